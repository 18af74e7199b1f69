// Another client's temporary schema, named outright (`pg_temp_1001.basket`), is another session's
// to PostgreSQL: refused with its own error, as on a server. (PostgreSQL 17 reads such a table by
// a sequential scan, finding nothing on a server; here it would find the other client's rows.)
// The check is PostgreSQL's object access hook for schema look-ups, which every explicit schema
// name and every search path goes through.
import { ERROR, REPORTING_ENTRY_POINTS, type ReportingModule, report } from './engine-errors.js';

interface HookModule extends ReportingModule {
  HEAPU32: Uint32Array;
  addFunction(fn: (...args: number[]) => void, signature: string): number;
  /** Byte address of object_access_hook, an exported static. */
  _object_access_hook: number;
}

/** ObjectAccessType's OAT_NAMESPACE_SEARCH. */
const OAT_NAMESPACE_SEARCH = 3;
/** Schemas made by initdb lie below this oid: never a client's. */
const FIRST_NORMAL_OBJECT_ID = 16384;
/** ObjectAccessNamespaceSearch: whether to raise the error, and the answer. */
const EREPORT_ON_VIOLATION = 0;
const RESULT = 1;

/**
 * Refuses look-ups of the schemas `isOthers` names; false when the hook cannot be installed (it
 * is taken by something else, or the engine lacks what it needs).
 */
export function guardTempSchemas(module: object, isOthers: (schema: number) => boolean): boolean {
  const engine = module as Partial<HookModule>;
  if (
    REPORTING_ENTRY_POINTS.some((name) => typeof engine[name] !== 'function') ||
    typeof engine.addFunction !== 'function' ||
    typeof engine._object_access_hook !== 'number'
  )
    return false;
  const hooked = engine as HookModule;
  const slot = hooked._object_access_hook >> 2;
  if (hooked.HEAPU32[slot] !== 0) return false;
  const hook = hooked.addFunction((access, _classId, schema, _subId, search) => {
    if (access !== OAT_NAMESPACE_SEARCH || schema < FIRST_NORMAL_OBJECT_ID || !isOthers(schema)) return;
    if (hooked.HEAPU8[search + EREPORT_ON_VIOLATION]) {
      report(
        hooked,
        ERROR,
        '0A000',
        'cannot access temporary tables of other sessions',
        "The schema is another client's temporary schema.",
      );
    }
    hooked.HEAPU8[search + RESULT] = 0;
  }, 'viiiii');
  hooked.HEAPU32[slot] = hook;
  return true;
}
