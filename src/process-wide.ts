/**
 * State shared by every copy of this package loaded in the process. A project that reaches the
 * package through both `import` and `require` (an ES module config and a CommonJS Jest setup, say)
 * gets two module instances, one of each build; state kept here is still one.
 */
export function processWide<T>(key: string, create: () => T): T {
  const holder = globalThis as Record<symbol, unknown>;
  const symbol = Symbol.for(`pglite-oxide.${key}`);
  if (!(symbol in holder)) holder[symbol] = create();
  return holder[symbol] as T;
}
