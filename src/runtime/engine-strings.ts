// A JavaScript string as a NUL-terminated C string in the engine's memory, for the length of a call.

interface StringModule {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
}

/** Calls `use` with `text` as a C string (UTF-8) in `module`'s memory, freed when it returns or throws. */
export function withCString<T>(module: StringModule, text: string, use: (pointer: number) => T): T {
  const bytes = Buffer.from(`${text}\0`, 'utf8');
  const pointer = module._malloc(bytes.length);
  try {
    module.HEAPU8.set(bytes, pointer);
    return use(pointer);
  } finally {
    module._free(pointer);
  }
}
