// pg_locks as a server shows it: each lock under its holder's pid. The engine's own locks are
// those of the transaction running now, which is the calling client's (the proxy lets no other
// client in while one is in a transaction), so they are shown with the caller's pid; the advisory
// locks, which this package keeps per client (see advisory-locks.ts), are shown under each
// holder's. pg_lock_status() is wrapped: PostgreSQL's own rows, then the advisory ones. The
// engine's own calls, and an engine no proxy serves, get PostgreSQL's answer alone. Private engine
// parts: tests/engine-internals.test.ts watches them.
import type { AdvisoryLocks } from './advisory-locks.js';
import { type BuiltinFunction, wrapBuiltin } from './builtin-functions.js';
import type { ClientTableHolder } from './client-table.js';
import {
  materialize,
  putTextRows,
  SET_RETURNING_ENTRY_POINTS,
  type SetReturningModule,
  type TextRow,
} from './set-returning.js';

interface LocksModule extends SetReturningModule {
  HEAP32: Int32Array;
  HEAP16: Int16Array;
  addFunction(fn: (fcinfo: number) => number, signature: string): number;
  _heap_deform_tuple(tuple: number, desc: number, values: number, nulls: number): void;
  _heap_form_tuple(desc: number, values: number, nulls: number): number;
  /** Addresses of MyProcPid and MyDatabaseId. */
  _MyProcPid: number;
  _MyDatabaseId: number;
}

const ENTRY_POINTS = [...SET_RETURNING_ENTRY_POINTS, '_heap_deform_tuple', '_heap_form_tuple'] as const;

const PG_LOCK_STATUS: BuiltinFunction = { oid: 1371, name: 'pg_lock_status', nargs: 0 };
/** pg_lock_status's columns in PostgreSQL 17, and where pid is. */
const COLUMNS = 16;
const PID_COLUMN = 11;
/** ReturnSetInfo.isDone, and its values. */
const RSINFO_IS_DONE = 20;
const EXPR_SINGLE_RESULT = 0;
const EXPR_END_RESULT = 2;
/** HeapTupleData on wasm32: t_len, t_self, t_tableOid, t_data. */
const HEAP_TUPLE_BYTES = 20;
const T_DATA = 16;

/** Makes pg_locks show each lock under its holder's pid; false when it cannot be installed. */
export function installLocksView(
  module: object,
  holder: ClientTableHolder,
  callerPid: () => number,
  locks: AdvisoryLocks | null,
  functionTable: WebAssembly.Table | null,
): boolean {
  const candidate = module as Partial<LocksModule>;
  if (!functionTable || !locks || ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function'))
    return false;
  if (typeof candidate._MyProcPid !== 'number' || typeof candidate._MyDatabaseId !== 'number') return false;
  const engine = candidate as LocksModule;
  return wrapBuiltin(engine, PG_LOCK_STATUS, (original) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo) => {
      const pid = callerPid();
      if (!holder.table || pid === 0) return postgres(fcinfo);
      const result = materialize(engine, fcinfo, 'record');
      if (result.columns !== COLUMNS)
        throw new Error(`pg_lock_status has ${result.columns} columns, not ${COLUMNS}`);
      copyEngineRows(engine, postgres, fcinfo, result, pid);
      const database = String(engine.HEAPU32[engine._MyDatabaseId >> 2]);
      const advisory: TextRow[] = locks
        .held()
        .map((lock) => [
          'advisory',
          database,
          null,
          null,
          null,
          null,
          null,
          String(lock.classid),
          String(lock.objid),
          String(lock.objsubid),
          null,
          String(lock.pid),
          lock.mode === 'exclusive' ? 'ExclusiveLock' : 'ShareLock',
          'true',
          'false',
          null,
        ]);
      putTextRows(engine, result, advisory);
      return 0;
    };
  });
}

/**
 * Runs PostgreSQL's pg_lock_status (a function that returns a row a call) to its end, and adds
 * each row to `result` with the engine's pid made the caller's.
 */
function copyEngineRows(
  engine: LocksModule,
  postgres: (fcinfo: number) => number,
  fcinfo: number,
  result: ReturnType<typeof materialize>,
  pid: number,
): void {
  const enginePid = engine.HEAP32[engine._MyProcPid >> 2]!;
  const values = engine._malloc(4 * COLUMNS);
  const nulls = engine._malloc(COLUMNS);
  const tuple = engine._malloc(HEAP_TUPLE_BYTES);
  try {
    for (;;) {
      const row = postgres(fcinfo);
      if (engine.HEAP32[(result.rsinfo + RSINFO_IS_DONE) >> 2] === EXPR_END_RESULT) break;
      // The row is a composite Datum: a tuple header whose varlena length is the tuple's.
      engine.HEAPU8.fill(0, tuple, tuple + HEAP_TUPLE_BYTES);
      engine.HEAPU32[tuple >> 2] = (engine.HEAPU32[row >> 2]! >>> 2) & 0x3fffffff;
      engine.HEAPU32[(tuple + T_DATA) >> 2] = row;
      engine._heap_deform_tuple(tuple, result.desc, values, nulls);
      const pidSlot = (values >> 2) + PID_COLUMN;
      if (!engine.HEAPU8[nulls + PID_COLUMN] && engine.HEAP32[pidSlot] === enginePid)
        engine.HEAP32[pidSlot] = pid;
      engine._tuplestore_puttuple(result.store, engine._heap_form_tuple(result.desc, values, nulls));
    }
    // The answer is the tuplestore, made in one call.
    engine.HEAP32[(result.rsinfo + RSINFO_IS_DONE) >> 2] = EXPR_SINGLE_RESULT;
  } finally {
    engine._free(values);
    engine._free(nulls);
    engine._free(tuple);
  }
}
