// A catalog query from JavaScript running inside an engine call (a replaced built-in), through
// PostgreSQL's SPI: for what the engine's C functions do not export (a database's oid by name).
import { withCString } from './engine-strings.js';

export interface QueryModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _SPI_connect(): number;
  _SPI_execute(sql: number, readOnly: number, count: number): number;
  _SPI_getvalue(tuple: number, tupleDesc: number, column: number): number;
  _SPI_finish(): number;
  /** Addresses of SPI's results: the row count (uint64) and the SPITupleTable. */
  _SPI_processed: number;
  _SPI_tuptable: number;
  UTF8ToString(pointer: number): string;
}

export const QUERY_ENTRY_POINTS = ['_SPI_connect', '_SPI_execute', '_SPI_getvalue', '_SPI_finish'] as const;

const SPI_OK_CONNECT = 1;
const SPI_OK_SELECT = 5;
/** SPITupleTable's tupdesc and vals. */
const TUPDESC = 0;
const VALS = 4;

/** Whether `module` has what queryRows needs. */
export function canQuery(module: Partial<QueryModule>): module is QueryModule {
  return (
    QUERY_ENTRY_POINTS.every((name) => typeof module[name] === 'function') &&
    typeof module._SPI_processed === 'number' &&
    typeof module._SPI_tuptable === 'number' &&
    typeof module.UTF8ToString === 'function'
  );
}

/**
 * The rows of a read-only SELECT, each column as its text (null for NULL). Errors are
 * PostgreSQL's, raised in the running call.
 */
export function queryRows(module: QueryModule, sql: string): Array<Array<string | null>> {
  if (module._SPI_connect() !== SPI_OK_CONNECT) throw new Error('SPI_connect failed');
  try {
    const done = withCString(module, sql, (pointer) => module._SPI_execute(pointer, 1, 0));
    if (done !== SPI_OK_SELECT) throw new Error(`SPI could not run: ${sql}`);
    const count = module.HEAPU32[module._SPI_processed >> 2]!;
    const table = module.HEAPU32[module._SPI_tuptable >> 2]!;
    const desc = module.HEAPU32[(table + TUPDESC) >> 2]!;
    const vals = module.HEAPU32[(table + VALS) >> 2]!;
    const columns = module.HEAPU32[desc >> 2]!;
    const rows: Array<Array<string | null>> = [];
    for (let row = 0; row < count; row++) {
      const tuple = module.HEAPU32[(vals >> 2) + row]!;
      const values: Array<string | null> = [];
      for (let column = 1; column <= columns; column++) {
        const value = module._SPI_getvalue(tuple, desc, column);
        values.push(value === 0 ? null : module.UTF8ToString(value));
      }
      rows.push(values);
    }
    return rows;
  } finally {
    module._SPI_finish();
  }
}
