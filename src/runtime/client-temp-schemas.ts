// Each client's own temporary schema in the one engine session. On a server every backend has its
// own pg_temp: a client's unqualified name never resolves to another's temporary table (a role's
// temporary table with a trigger would otherwise be what a superuser's `insert into users` hits),
// and two clients may both create a temporary `scratch`. PostgreSQL keeps the session's temporary
// schema in two statics of namespace.c (myTempNamespace and its toast schema); ClientObjects
// points them at the client's own around its calls, and this module makes that safe:
//
// - PostgreSQL makes the temporary schema on first use as pg_temp_<backend number>, emptying one
//   of that name it finds. So once a client has made one, it is renamed to a name of the client's
//   own (pg_temp_<1000 + its entry>), as the engine's superuser, and the next client makes a new
//   one. Other clients then see it as another session's (PostgreSQL refuses to read those).
// - The search path PostgreSQL computed, and its cache, name the schema: they are invalidated
//   with PostgreSQL's own invalidation callback of namespace.c, called through the function table.
// - The relation cache marks a temporary table as the session's own (rd_islocaltemp) as it was
//   when its entry was built: entries of temporary tables are marked again for the new owner, so
//   another client's are refused as another session's (0A000), as on a server. Their files are
//   all the engine's one backend's (rd_backend).
//
// The statics are found once per engine start next to the exported MyProcPid and proven with the
// exported isTempNamespace(); the callback is found among the registered syscache callbacks and
// proven by the search path it makes PostgreSQL compute. Private engine parts:
// tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import { serialize } from 'pg-protocol';
import { scanBackend } from '../protocol/backend-scanner.js';
import { findTableStatic, slotsNearProcPid } from './engine-statics.js';

interface TempModule {
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
  HEAPU32: Uint32Array;
  HEAP16: Int16Array;
  _MyProcPid: number;
  addFunction(fn: (...args: number[]) => void, signature: string): number;
  _isTempNamespace(namespace: number): number;
  _CacheRegisterSyscacheCallback(cacheId: number, callback: number, arg: number): void;
  _malloc(size: number): number;
  _free(pointer: number): void;
  _GetUserIdAndSecContext(userId: number, secContext: number): void;
  _SetUserIdAndSecContext(userId: number, secContext: number): void;
  _hash_seq_init(status: number, table: number): void;
  _hash_seq_search(status: number): number;
}

/** A session's temporary schema and its toast schema (InvalidOid, 0, when it has none yet). */
export interface TempSchema {
  schema: number;
  toast: number;
}

export const NO_TEMP_SCHEMA: TempSchema = { schema: 0, toast: 0 };

/** How far from myTempNamespace its toast schema's static lies. */
const TOAST_NEIGHBOURHOOD_BYTES = 64;
/** An argument no callback PostgreSQL registers has: marks the probe's own entry in the list. */
const PROBE_ARG = 0x5eed1234;
/** SYSCACHECALLBACK on wasm32: int16 id, int16 link, the function, its Datum argument. */
const CALLBACK_BYTES = 12;
const CALLBACK_FUNCTION = 4;
const CALLBACK_ARG = 8;
/** Names a client's temporary schema gets: above any backend number a one-process engine has. */
const CLIENT_SCHEMA_BASE = 1000;
/** The relation cache's hash table, and the parts of its entries read here (wasm32). */
const RELCACHE_TABLE = 'Relcache by OID';
const ENTRY_RELATION = 4;
const RELATION_SMGR = 12;
const RELATION_BACKEND = 20;
const RELATION_IS_LOCAL_TEMP = 24;
const RELATION_FORM = 48;
const FORM_OID = 0;
const FORM_NAMESPACE = 68;
const FORM_PERSISTENCE = 114;
const TEMP_PERSISTENCE = 't'.charCodeAt(0);
/** HASH_SEQ_STATUS, with room to spare. */
const SEQ_STATUS_BYTES = 32;

export class TempSchemas {
  private constructor(
    private readonly module: TempModule,
    /** Byte addresses of myTempNamespace and myTempToastNamespace. */
    private readonly schemaStatic: number,
    private readonly toastStatic: number,
    /** Makes PostgreSQL compute the search path (and its cache) again. */
    private readonly invalidate: () => void,
    /** The engine's superuser, whose rights rename a client's schema. */
    private readonly engineOid: number,
    /** Byte address of the static RelationIdCache. */
    private readonly relcacheStatic: number,
    /** The engine's backend number: its temporary files are named by it. */
    private readonly backend: number,
  ) {}

  /** Finds and proves what this needs (see the top of this file); undefined when it cannot. */
  static async install(
    engine: PGlite,
    functionTable: WebAssembly.Table | null,
    engineOid: number,
  ): Promise<TempSchemas | undefined> {
    const module = (engine as unknown as { mod?: Partial<TempModule> }).mod;
    if (!module || !functionTable || !hasEntryPoints(module)) return undefined;
    await engine.exec('CREATE TEMP TABLE pglite_oxide_probe ()');
    try {
      const { rows } = await engine.query<{ schema: number; toast: number; backend: number; probe: number }>(
        `SELECT n.oid::int AS schema, t.oid::int AS toast, pg_catalog.substr(n.nspname, 9)::int AS backend,
                'pg_temp.pglite_oxide_probe'::pg_catalog.regclass::pg_catalog.oid::int AS probe
           FROM pg_catalog.pg_namespace n
           JOIN pg_catalog.pg_namespace t ON t.nspname = 'pg_toast_temp_' || pg_catalog.substr(n.nspname, 9)
          WHERE n.oid = pg_catalog.pg_my_temp_schema()`,
      );
      const made = rows[0];
      if (!made) return undefined;
      // Read once, so that the relation cache has an entry for it.
      await engine.query('SELECT FROM pg_temp.pglite_oxide_probe');
      const relcacheStatic = findTableStatic(module, RELCACHE_TABLE);
      if (relcacheStatic === null || !readsRelations(module, relcacheStatic, made)) return undefined;
      const schemaStatic = findSchemaStatic(module, made.schema);
      if (schemaStatic === null) return undefined;
      const toastStatic = findNear(module, schemaStatic, made.toast);
      if (toastStatic === null) return undefined;
      const write = (schema: TempSchema) => {
        module.HEAPU32[schemaStatic >> 2] = schema.schema;
        module.HEAPU32[toastStatic >> 2] = schema.toast;
      };
      for (const invalidate of callbackCandidates(module, functionTable)) {
        if (await provesInvalidation(engine, write, invalidate, made)) {
          const schemas = new TempSchemas(
            module,
            schemaStatic,
            toastStatic,
            invalidate,
            engineOid,
            relcacheStatic,
            made.backend,
          );
          await engine.exec('DROP TABLE pg_temp.pglite_oxide_probe');
          // The engine's own session keeps no temporary schema: a client's first makes one.
          schemas.set(NO_TEMP_SCHEMA);
          return schemas;
        }
      }
      return undefined;
    } finally {
      await engine.exec('DROP TABLE IF EXISTS pg_temp.pglite_oxide_probe');
    }
  }

  /** The session's temporary schema now. */
  current(): TempSchema {
    const heap = this.module.HEAPU32;
    return { schema: heap[this.schemaStatic >> 2]!, toast: heap[this.toastStatic >> 2]! };
  }

  /** Makes `schema` the session's temporary schema, and has PostgreSQL compute its search path again. */
  set(schema: TempSchema): void {
    const heap = this.module.HEAPU32;
    heap[this.schemaStatic >> 2] = schema.schema;
    heap[this.toastStatic >> 2] = schema.toast;
    this.invalidate();
    forEachRelation(this.module, this.relcacheStatic, (relation, form) => {
      const bytes = this.module.HEAPU8;
      const words = this.module.HEAPU32;
      if (bytes[form + FORM_PERSISTENCE] !== TEMP_PERSISTENCE) return;
      const namespace = words[(form + FORM_NAMESPACE) >> 2];
      bytes[relation + RELATION_IS_LOCAL_TEMP] =
        schema.schema !== 0 && (namespace === schema.schema || namespace === schema.toast) ? 1 : 0;
      if (this.module.HEAP32[(relation + RELATION_BACKEND) >> 2] !== this.backend) {
        // Built by a client that saw another's table: its file handle names the wrong file.
        this.module.HEAP32[(relation + RELATION_BACKEND) >> 2] = this.backend;
        words[(relation + RELATION_SMGR) >> 2] = 0;
      }
    });
  }

  /**
   * Gives `schema`, which PostgreSQL just made under its own name, the name of client `entry`'s
   * own (dropping what a former client of that entry may have left under it). Runs SQL through
   * `exec` as the engine's superuser, outside any transaction; false when it failed.
   */
  adopt(schema: TempSchema, entry: number, exec: (bytes: Uint8Array) => Uint8Array): boolean {
    const name = `pg_temp_${CLIENT_SCHEMA_BASE + entry}`;
    const toastName = `pg_toast_temp_${CLIENT_SCHEMA_BASE + entry}`;
    const rename = (oid: number, to: string) =>
      `EXECUTE pg_catalog.format('ALTER SCHEMA %I RENAME TO ${to}', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = ${oid}));`;
    const sql = [
      'SET LOCAL transaction_read_only = off',
      'SET LOCAL search_path = pg_catalog',
      'SET LOCAL allow_system_table_mods = on',
      'SET LOCAL event_triggers = off',
      `DROP SCHEMA IF EXISTS ${name}, ${toastName} CASCADE`,
      `DO $$BEGIN ${rename(schema.schema, name)} ${rename(schema.toast, toastName)} END$$`,
    ].join('; ');
    const scratch = this.module._malloc(8);
    try {
      this.module._GetUserIdAndSecContext(scratch, scratch + 4);
      const userId = this.module.HEAPU32[scratch >> 2]!;
      const secContext = this.module.HEAPU32[(scratch + 4) >> 2]!;
      this.module._SetUserIdAndSecContext(this.engineOid, secContext);
      try {
        return scanBackend(exec(serialize.query(sql))).errors === 0;
      } finally {
        this.module._SetUserIdAndSecContext(userId, secContext);
      }
    } finally {
      this.module._free(scratch);
    }
  }
}

function hasEntryPoints(module: Partial<TempModule>): module is TempModule {
  return (
    typeof module._hash_seq_init === 'function' &&
    typeof module._hash_seq_search === 'function' &&
    module.HEAPU32 !== undefined &&
    module.HEAP16 !== undefined &&
    typeof module._MyProcPid === 'number' &&
    typeof module.addFunction === 'function' &&
    typeof module._isTempNamespace === 'function' &&
    typeof module._CacheRegisterSyscacheCallback === 'function' &&
    typeof module._malloc === 'function' &&
    typeof module._free === 'function' &&
    typeof module._GetUserIdAndSecContext === 'function' &&
    typeof module._SetUserIdAndSecContext === 'function'
  );
}

/** Calls `visit` with each relation in the relation cache and its pg_class row. */
function forEachRelation(
  module: TempModule,
  relcacheStatic: number,
  visit: (relation: number, form: number) => void,
): void {
  const status = module._malloc(SEQ_STATUS_BYTES);
  try {
    module._hash_seq_init(status, module.HEAPU32[relcacheStatic >> 2]!);
    for (let entry = module._hash_seq_search(status); entry !== 0; entry = module._hash_seq_search(status)) {
      const relation = module.HEAPU32[(entry + ENTRY_RELATION) >> 2]!;
      const form = relation === 0 ? 0 : module.HEAPU32[(relation + RELATION_FORM) >> 2]!;
      if (form !== 0) visit(relation, form);
    }
  } finally {
    module._free(status);
  }
}

/** Whether the relation cache's entry of the probe's table reads as expected: a temporary table of the session's own. */
function readsRelations(
  module: TempModule,
  relcacheStatic: number,
  made: { schema: number; backend: number; probe: number },
): boolean {
  let matches = false;
  forEachRelation(module, relcacheStatic, (relation, form) => {
    if (module.HEAPU32[(form + FORM_OID) >> 2] !== made.probe) return;
    matches =
      module.HEAPU32[(form + FORM_NAMESPACE) >> 2] === made.schema &&
      module.HEAPU8[form + FORM_PERSISTENCE] === TEMP_PERSISTENCE &&
      module.HEAPU8[relation + RELATION_IS_LOCAL_TEMP] === 1 &&
      module.HEAP32[(relation + RELATION_BACKEND) >> 2] === made.backend;
  });
  return matches;
}

/** myTempNamespace: the word near MyProcPid holding `schema` that isTempNamespace() reads. */
function findSchemaStatic(module: TempModule, schema: number): number | null {
  const heap = module.HEAPU32;
  for (const slot of slotsNearProcPid(module)) {
    if (heap[slot] !== schema) continue;
    heap[slot] = schema + 1;
    const moved = module._isTempNamespace(schema) === 0;
    heap[slot] = schema;
    if (moved && module._isTempNamespace(schema) !== 0) return slot << 2;
  }
  return null;
}

/** The one word within a few bytes of `address` that holds `value`. */
function findNear(module: TempModule, address: number, value: number): number | null {
  let found: number | null = null;
  for (let distance = 4; distance <= TOAST_NEIGHBOURHOOD_BYTES; distance += 4) {
    for (const at of [address + distance, address - distance]) {
      if (module.HEAPU32[at >> 2] !== value) continue;
      if (found !== null) return null;
      found = at;
    }
  }
  return found;
}

/**
 * Each function registered as a syscache callback, called as PostgreSQL would call it on an
 * invalidation of its cache. The list is found by an entry registered here with a marked argument.
 */
function callbackCandidates(module: TempModule, table: WebAssembly.Table): Array<() => void> {
  const probe = module.addFunction(() => {}, 'viii');
  module._CacheRegisterSyscacheCallback(0, probe, PROBE_ARG);
  const heap = module.HEAPU32;
  let own = -1;
  for (const slot of slotsNearProcPid(module)) {
    if (heap[slot] === probe && heap[slot + 1] === PROBE_ARG) {
      own = (slot << 2) - CALLBACK_FUNCTION;
      break;
    }
  }
  if (own < 0) return [];
  // The list fills from its start: the probe's entry is its last.
  const registrations = new Map<number, Array<{ id: number; arg: number }>>();
  for (let entry = own - CALLBACK_BYTES; entry >= 0; entry -= CALLBACK_BYTES) {
    const fn = heap[(entry + CALLBACK_FUNCTION) >> 2]!;
    const id = module.HEAP16[entry >> 1]!;
    if (fn === 0 || fn >= table.length || id < 0) break;
    if (fn === probe) continue;
    const found = registrations.get(fn) ?? [];
    found.push({ id, arg: heap[(entry + CALLBACK_ARG) >> 2]! });
    registrations.set(fn, found);
  }
  // namespace.c registers its callback for four caches: functions registered for many come first.
  const candidates: Array<() => void> = [];
  for (const [fn, found] of [...registrations].sort((a, b) => b[1].length - a[1].length)) {
    const callback = table.get(fn) as ((arg: number, cacheId: number, hash: number) => void) | null;
    const { id, arg } = found[0]!;
    if (typeof callback === 'function') candidates.push(() => callback(arg, id, 0));
  }
  return candidates;
}

/**
 * Whether `invalidate` makes PostgreSQL compute the search path again: with no temporary schema
 * written, the path must lose the one made for the probe, and have it back once it is written back.
 */
async function provesInvalidation(
  engine: PGlite,
  write: (schema: TempSchema) => void,
  invalidate: () => void,
  made: TempSchema,
): Promise<boolean> {
  const path = async () =>
    (await engine.query<{ path: string }>('SELECT pg_catalog.current_schemas(true)::text AS path')).rows[0]!
      .path;
  await path();
  write(NO_TEMP_SCHEMA);
  let without: string;
  try {
    invalidate();
    without = await path();
  } finally {
    write(made);
  }
  invalidate();
  const back = await path();
  return !without.includes('pg_temp') && back.includes('pg_temp');
}
