// The rows of a set-returning built-in answered from JavaScript: PostgreSQL's materialize mode
// (InitMaterializedSRF makes the tuplestore the executor reads), each row given as the text of its
// columns and read by the columns' own input functions (BuildTupleFromCStrings), so a value is
// exactly what the same text would give in SQL.

export interface SetReturningModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _InitMaterializedSRF(fcinfo: number, flags: number): void;
  _TupleDescGetAttInMetadata(tupleDesc: number): number;
  _BuildTupleFromCStrings(attInMetadata: number, values: number): number;
  _tuplestore_puttuple(store: number, tuple: number): void;
}

export const SET_RETURNING_ENTRY_POINTS = [
  '_malloc',
  '_free',
  '_InitMaterializedSRF',
  '_TupleDescGetAttInMetadata',
  '_BuildTupleFromCStrings',
  '_tuplestore_puttuple',
] as const;

/** FunctionCallInfoBaseData.resultinfo, and ReturnSetInfo's setResult and setDesc, on wasm32. */
const FCINFO_RESULTINFO = 8;
const RSINFO_SET_RESULT = 24;
const RSINFO_SET_DESC = 28;

/** InitMaterializedSRF's flag for a function of one column: the executor's expected result. */
const MAT_SRF_USE_EXPECTED_DESC = 1;

/** One row: each column's text as SQL would give it to the column's type, null for NULL. */
export type TextRow = ReadonlyArray<string | null>;

/** The tuplestore a materialize-mode call fills, and the description of its rows. */
export interface MaterializedResult {
  store: number;
  desc: number;
  columns: number;
  /** ReturnSetInfo of the call. */
  rsinfo: number;
}

/** Sets the call `fcinfo` of a set-returning function up to answer in materialize mode. */
export function materialize(
  module: SetReturningModule,
  fcinfo: number,
  result: 'record' | 'scalar',
): MaterializedResult {
  module._InitMaterializedSRF(fcinfo, result === 'scalar' ? MAT_SRF_USE_EXPECTED_DESC : 0);
  const rsinfo = module.HEAPU32[(fcinfo + FCINFO_RESULTINFO) >> 2]!;
  const desc = module.HEAPU32[(rsinfo + RSINFO_SET_DESC) >> 2]!;
  return {
    rsinfo,
    store: module.HEAPU32[(rsinfo + RSINFO_SET_RESULT) >> 2]!,
    desc,
    columns: module.HEAPU32[desc >> 2]!,
  };
}

/** Adds `rows` (each as many columns as the result has) to a materialized result. */
export function putTextRows(
  module: SetReturningModule,
  target: MaterializedResult,
  rows: readonly TextRow[],
): void {
  if (rows.length === 0) return;
  const meta = module._TupleDescGetAttInMetadata(target.desc);
  for (const row of rows) {
    if (row.length !== target.columns)
      throw new Error(`a row of ${row.length} columns for a result of ${target.columns}`);
    // The pointers, then the texts, in one block: freed once the row is in the tuplestore (which copies it).
    const texts = row.map((value) => (value === null ? null : Buffer.from(`${value}\0`, 'utf8')));
    const size = 4 * target.columns + texts.reduce((sum, text) => sum + (text?.length ?? 0), 0);
    const block = module._malloc(size);
    try {
      let at = block + 4 * target.columns;
      texts.forEach((text, column) => {
        module.HEAPU32[(block >> 2) + column] = text === null ? 0 : at;
        if (text !== null) {
          module.HEAPU8.set(text, at);
          at += text.length;
        }
      });
      module._tuplestore_puttuple(target.store, module._BuildTupleFromCStrings(meta, block));
    } finally {
      module._free(block);
    }
  }
}

/**
 * Answers the call `fcinfo` of a set-returning function with `rows` (each as many columns as its
 * result has: one for a function of a scalar type); returns the Datum to return (none: the rows
 * are in the tuplestore).
 */
export function returnRows(
  module: SetReturningModule,
  fcinfo: number,
  rows: readonly TextRow[],
  result: 'record' | 'scalar',
): number {
  putTextRows(module, materialize(module, fcinfo, result), rows);
  return 0;
}
