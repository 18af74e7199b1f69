// Each database the proxy serves runs on an engine of its own, each with its own oid counter; the
// rows of the catalogs they share (roles, databases) must still get oids no other engine gives.
// PostgreSQL picks a new role's or database's oid from the counter, skipping those its catalog
// already has, so two engines whose counters stand at the same place would give two new roles
// the same oid before either hears of the other's. Each engine therefore counts in an oid range
// of its own. Private engine parts: tests/engine-internals.test.ts watches them.

interface OidModule {
  HEAPU32: Uint32Array;
  /** Address of the TransamVariables pointer (PostgreSQL 17's shared transaction counters). */
  _TransamVariables: number;
}

/** The oids of ranges 0, 1, 2, ... start here; range 0 is where an initdb cluster counts. */
const FIRST_NORMAL_OBJECT_ID = 16384;
/** Oids a range holds: 255 ranges fit below 2^32. */
export const OID_RANGE_SIZE = 1 << 24;
export const OID_RANGES = Math.floor((2 ** 32 - FIRST_NORMAL_OBJECT_ID) / OID_RANGE_SIZE);

/**
 * Moves the engine's oid counter into range `range`, unless it already counts there (an engine
 * restarted on its own cluster). False when the engine lacks what it takes.
 */
export function moveOidCounter(module: object, range: number): boolean {
  const engine = module as Partial<OidModule>;
  if (typeof engine._TransamVariables !== 'number' || !engine.HEAPU32) return false;
  const variables = engine.HEAPU32[engine._TransamVariables >> 2]!;
  if (variables === 0) return false;
  const start = FIRST_NORMAL_OBJECT_ID + (range % OID_RANGES) * OID_RANGE_SIZE;
  const next = engine.HEAPU32[variables >> 2]!;
  if (next >= start && next < start + OID_RANGE_SIZE) return true;
  // TransamVariablesData begins with nextOid and oidCount: a count of 0 has the next oid logged
  // (and so kept through a restart) before it is handed out.
  engine.HEAPU32[variables >> 2] = start;
  engine.HEAPU32[(variables >> 2) + 1] = 0;
  return true;
}
