// Statics of the engine's C code that are not exported, found by what they point to. PostgreSQL
// keeps its per-session tables in dynahash tables whose HTAB records the table's name: a static
// that points to a table of a known name is that table's static. The linker keeps a module's
// statics near the exported ones, so the search looks around MyProcPid.

interface StaticsModule {
  HEAPU32: Uint32Array;
  _MyProcPid: number;
}

/** How far from MyProcPid the statics looked for lie, in the builds seen. */
export const NEAR_PROC_PID_BYTES = 256 * 1024;
/** Offset of `tabname` in a dynahash HTAB (wasm32). */
const HTAB_NAME = 28;

/** The one static word near MyProcPid that points to a hash table named `name`; null when none or several. */
export function findTableStatic(module: StaticsModule, name: string): number | null {
  const heap = module.HEAPU32;
  const bytes = new Uint8Array(heap.buffer);
  const wanted = Buffer.from(`${name}\0`, 'latin1');
  let found: number | null = null;
  for (const slot of slotsNearProcPid(module)) {
    const table = heap[slot]!;
    if (table === 0 || table % 4 !== 0 || table + HTAB_NAME + 4 > bytes.length) continue;
    const tableName = heap[(table + HTAB_NAME) >> 2]!;
    if (tableName + wanted.length > bytes.length) continue;
    if (!wanted.equals(bytes.subarray(tableName, tableName + wanted.length))) continue;
    if (found !== null) return null;
    found = slot << 2;
  }
  return found;
}

/** Word indexes of the static data near MyProcPid. */
export function* slotsNearProcPid(module: StaticsModule): Generator<number> {
  const from = Math.max(0, module._MyProcPid - NEAR_PROC_PID_BYTES) >> 2;
  const to = Math.min(module.HEAPU32.length, (module._MyProcPid + NEAR_PROC_PID_BYTES) >> 2);
  for (let slot = from; slot < to; slot++) yield slot;
}
