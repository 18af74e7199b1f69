// PostgreSQL finds the C function behind a built-in SQL function in fmgr_builtins, a table in its
// static data: { Oid foid; int16 nargs; bool strict; bool retset; const char *name; PGFunction
// func }. Replacing an entry's `func` with a JavaScript function makes every call of that SQL
// function, by any path (a query, a view, a PL/pgSQL body, SQL built at run time), call the
// JavaScript one: the way the engine answers per client what it would answer per session. The
// entry is found by its name and oid, and checked, before it is changed. Private engine parts:
// tests/engine-internals.test.ts watches them.

interface FunctionTableModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  HEAP16: Int16Array;
  addFunction(fn: (fcinfo: number) => number, signature: string): number;
}

/** Where static data can lie: the module's data and bss end well below this in every build seen. */
export const STATIC_DATA_BYTES = 16 * 1024 * 1024;
/** Offsets in an FmgrBuiltin entry (wasm32). */
const FOID = 0;
const NARGS = 4;
const NAME = 8;
const FUNC = 12;

/** A built-in SQL function to replace: its oid in pg_proc, its C name and its argument count. */
export interface BuiltinFunction {
  oid: number;
  name: string;
  nargs: number;
}

/**
 * Makes built-in `fn` call `replacement` (given the FunctionCallInfo pointer, returning the
 * Datum); false when its entry cannot be found as expected (nothing is changed then).
 */
export function replaceBuiltin(
  module: FunctionTableModule,
  fn: BuiltinFunction,
  replacement: (fcinfo: number) => number,
): boolean {
  const entry = findEntry(module, fn);
  if (entry === null) return false;
  module.HEAPU32[(entry + FUNC) >> 2] = module.addFunction(replacement, 'ii');
  return true;
}

/** Replaces every function of `replacements`, or none when any of them cannot be found. */
export function replaceBuiltins(
  module: FunctionTableModule,
  replacements: ReadonlyArray<[BuiltinFunction, (fcinfo: number) => number]>,
): boolean {
  const entries = replacements.map(([fn]) => findEntry(module, fn));
  if (entries.some((entry) => entry === null)) return false;
  replacements.forEach(([, replacement], index) => {
    module.HEAPU32[(entries[index]! + FUNC) >> 2] = module.addFunction(replacement, 'ii');
  });
  return true;
}

/** The address of fn's FmgrBuiltin entry: one whose name points at fn's name, with fn's oid and argument count. */
function findEntry(module: FunctionTableModule, fn: BuiltinFunction): number | null {
  const memory = module.HEAPU8;
  const statics = Buffer.from(memory.buffer, memory.byteOffset, Math.min(memory.length, STATIC_DATA_BYTES));
  const name = Buffer.from(`\0${fn.name}\0`, 'latin1');
  const pointer = Buffer.alloc(4);
  for (let at = statics.indexOf(name); at >= 0; at = statics.indexOf(name, at + 1)) {
    pointer.writeUInt32LE(at + 1);
    for (let ref = statics.indexOf(pointer); ref >= 0; ref = statics.indexOf(pointer, ref + 1)) {
      const entry = ref - NAME;
      if (entry % 4 !== 0) continue;
      if (module.HEAPU32[(entry + FOID) >> 2] === fn.oid && module.HEAP16[(entry + NARGS) >> 1] === fn.nargs)
        return entry;
    }
  }
  return null;
}

/**
 * Makes built-in `fn` call what `wrap` makes of it, given the index of PostgreSQL's own function
 * in the engine's function table (to call it where the replacement wants PostgreSQL's answer);
 * false when its entry cannot be found as expected (nothing is changed then).
 */
export function wrapBuiltin(
  module: FunctionTableModule,
  fn: BuiltinFunction,
  wrap: (original: number) => (fcinfo: number) => number,
): boolean {
  const entry = findEntry(module, fn);
  if (entry === null) return false;
  const original = module.HEAPU32[(entry + FUNC) >> 2]!;
  module.HEAPU32[(entry + FUNC) >> 2] = module.addFunction(wrap(original), 'ii');
  return true;
}

/** FunctionCallInfoBaseData on wasm32: isnull, then args of { Datum value; bool isnull }. */
export const FCINFO_ISNULL = 16;
const FCINFO_ARGS = 20;
const NULLABLE_DATUM_BYTES = 8;

/** What reading a call's text arguments needs of the engine. */
export interface ArgumentsModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  UTF8ToString(pointer: number): string;
  _text_to_cstring(text: number): number;
  _pfree(pointer: number): void;
}

export const ARGUMENTS_ENTRY_POINTS = ['UTF8ToString', '_text_to_cstring', '_pfree'] as const;

export function argumentIsNull(
  module: Pick<ArgumentsModule, 'HEAPU8'>,
  fcinfo: number,
  index: number,
): boolean {
  return module.HEAPU8[fcinfo + FCINFO_ARGS + index * NULLABLE_DATUM_BYTES + 4] !== 0;
}

export function argument(module: Pick<ArgumentsModule, 'HEAPU32'>, fcinfo: number, index: number): number {
  return module.HEAPU32[(fcinfo + FCINFO_ARGS + index * NULLABLE_DATUM_BYTES) >> 2]!;
}

/** A text argument as a string; null when it is NULL. */
export function textArgument(module: ArgumentsModule, fcinfo: number, index: number): string | null {
  if (argumentIsNull(module, fcinfo, index)) return null;
  const text = module._text_to_cstring(argument(module, fcinfo, index));
  try {
    return module.UTF8ToString(text);
  } finally {
    module._pfree(text);
  }
}
