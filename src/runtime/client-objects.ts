// Each client's own prepared statements and portals (cursors) in the one engine session. On a
// server every backend has its own: PREPARE, DECLARE, DEALLOCATE ALL, CLOSE ALL, pg_cursors and
// pg_prepared_statements see only that backend's. PostgreSQL keeps them in two hash tables that
// statics of prepare.c and portalmem.c point to; around each of a client's calls this module points
// those statics at the client's own tables, so whatever SQL a client runs (built at run time too,
// in a DO block or a function) sees and touches its own objects only.
//
// Portals belong to transactions (PostgreSQL cleans them up at commit and abort), so a client's
// portal table is put in place only while no transaction is open: a client's transaction runs to
// its end with the client's table in place (the proxy lets no other client in meanwhile), and
// under a test's outer transaction the clients share the engine's table as before.
//
// The statics are not exported: they are found once per engine start as the words near the
// exported MyProcPid that point to a hash table of that name. The record of whose table is whose
// lives in the engine's own memory, so a snapshot restore puts it back together with the tables.
// Private engine parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import type { ClientTableHolder } from './client-table.js';

interface ObjectsModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  ___memory_base: { value: number } | number;
  _MyProcPid: number;
  _malloc(size: number): number;
  _hash_create(name: number, entries: number, control: number, flags: number): number;
  _hash_get_num_entries(table: number): number;
  _IsTransactionState(): number;
  _IsTransactionBlock(): number;
}

/** How far from MyProcPid the statics of prepare.c and portalmem.c lie in the builds seen. */
const SEARCH_BYTES = 256 * 1024;
/** Offset of `tabname` in a dynahash HTAB (wasm32). */
const HTAB_NAME = 28;
/** Offsets of the hash, match and keycopy functions in an HTAB: a new table must match the engine's. */
const HTAB_FUNCTIONS = [8, 12, 16];
const PREPARED_TABLE = 'Prepared Queries';
const PORTAL_TABLE = 'Portal hash';

/** hash_create() for a portal table as portalmem.c makes it (HASHCTL on wasm32: keysize at 16, entrysize at 20). */
const HASHCTL_BYTES = 64;
const HASHCTL_KEYSIZE = 16;
const HASHCTL_ENTRYSIZE = 20;
const HASH_ELEM = 0x08;
const HASH_STRINGS = 0x10;
/** MAX_PORTALNAME_LEN, and PortalHashEnt: the name, then a pointer. */
const PORTAL_NAME_BYTES = 64;
const PORTAL_ENTRY_BYTES = PORTAL_NAME_BYTES + 4;
const PORTALS_PER_USER = 16;

/** The record in engine memory: a header, then one entry a client. Words. */
const ENGINE_PREPARED = 0;
const ENGINE_PORTALS = 1;
const PREPARED_OWNER = 2;
const PORTALS_OWNER = 3;
const HEADER_WORDS = 4;
const PID = 0;
const PREPARED = 1;
const PORTALS = 2;
const ENTRY_WORDS = 3;
const ENTRIES = 1024;
/** The engine's own session: its tables are in the header. */
const ENGINE = 0;

export class ClientObjects {
  private constructor(
    private readonly module: ObjectsModule,
    private readonly clients: ClientTableHolder,
    /** Byte addresses of the statics prepared_queries and PortalHashTable. */
    private readonly preparedStatic: number,
    private readonly portalStatic: number,
    /** Byte address of the record (see above). */
    private readonly record: number,
    /** A HASHCTL for portal tables and the name they get, kept for the engine's lifetime. */
    private readonly portalControl: number,
    private readonly portalName: number,
  ) {}

  static of(engine: PGlite): ClientObjects | undefined {
    return installed.get(engine);
  }

  /**
   * Finds the statics (the prepared statement table exists once something was prepared: a probe
   * is) and proves that a portal table made here is made as the engine makes its own.
   */
  static async install(engine: PGlite, clients: ClientTableHolder): Promise<ClientObjects | undefined> {
    const module = (engine as unknown as { mod?: Partial<ObjectsModule> }).mod;
    if (!module || !hasEntryPoints(module)) return undefined;
    await engine.exec('PREPARE pglite_oxide_probe AS SELECT 1; DEALLOCATE pglite_oxide_probe');
    const preparedStatic = findTableStatic(module, PREPARED_TABLE);
    const portalStatic = findTableStatic(module, PORTAL_TABLE);
    if (preparedStatic === null || portalStatic === null) return undefined;
    const portalControl = module._malloc(HASHCTL_BYTES);
    module.HEAPU8.fill(0, portalControl, portalControl + HASHCTL_BYTES);
    module.HEAPU32[(portalControl + HASHCTL_KEYSIZE) >> 2] = PORTAL_NAME_BYTES;
    module.HEAPU32[(portalControl + HASHCTL_ENTRYSIZE) >> 2] = PORTAL_ENTRY_BYTES;
    const name = Buffer.from(`${PORTAL_TABLE}\0`, 'latin1');
    const portalName = module._malloc(name.length);
    module.HEAPU8.set(name, portalName);
    const recordBytes = (HEADER_WORDS + ENTRIES * ENTRY_WORDS) * 4;
    const record = module._malloc(recordBytes);
    module.HEAPU8.fill(0, record, record + recordBytes);
    const objects = new ClientObjects(
      module,
      clients,
      preparedStatic,
      portalStatic,
      record,
      portalControl,
      portalName,
    );
    const heap = module.HEAPU32;
    heap[(record >> 2) + ENGINE_PREPARED] = heap[preparedStatic >> 2]!;
    heap[(record >> 2) + ENGINE_PORTALS] = heap[portalStatic >> 2]!;
    if (!objects.madeLikeEngines(objects.newPortalTable())) return undefined;
    installed.set(engine, objects);
    return objects;
  }

  /** Runs `call` with client `pid`'s prepared statements and portals in place of the session's. */
  runFor<T>(pid: number, call: () => T): T {
    this.enter(pid);
    try {
      return call();
    } finally {
      this.enter(ENGINE);
    }
  }

  private enter(pid: number): void {
    const record = this.record >> 2;
    const heap = this.module.HEAPU32;
    const movePortals = heap[record + PORTALS_OWNER] !== pid && !this.inTransaction();
    if (heap[record + PREPARED_OWNER] === pid && !movePortals) return;
    // A client without an entry (none free) uses the session's own objects.
    const entry = this.entryOf(pid);
    const owner = entry === null ? ENGINE : pid;
    const preparedSlot = entry === null ? record + ENGINE_PREPARED : entry + PREPARED;
    const portalsSlot = entry === null ? record + ENGINE_PORTALS : entry + PORTALS;
    // A new portal table may have grown the memory: a fresh view of it.
    const words = this.module.HEAPU32;
    const preparedOwner = words[record + PREPARED_OWNER]!;
    if (preparedOwner !== owner) {
      // PostgreSQL makes the prepared statement table on first use: what it made goes to its owner.
      const ownerSlot = this.preparedSlot(preparedOwner);
      if (ownerSlot !== null) words[ownerSlot] = words[this.preparedStatic >> 2]!;
      words[this.preparedStatic >> 2] = words[preparedSlot]!;
      words[record + PREPARED_OWNER] = owner;
    }
    if (movePortals && words[record + PORTALS_OWNER] !== owner) {
      words[this.portalStatic >> 2] = words[portalsSlot]!;
      words[record + PORTALS_OWNER] = owner;
    }
  }

  /** Word index of where `pid`'s prepared table is kept; null when it has no entry. */
  private preparedSlot(pid: number): number | null {
    if (pid === ENGINE) return (this.record >> 2) + ENGINE_PREPARED;
    const entry = this.findEntry(pid);
    return entry === null ? null : entry + PREPARED;
  }

  /**
   * Word index of `pid`'s entry, made when new: a free one, or one of a client that has left (its
   * objects were closed as it left; a table that still holds some is not handed on). Null for the
   * engine itself, and when no entry is free.
   */
  private entryOf(pid: number): number | null {
    if (pid === ENGINE) return null;
    const found = this.findEntry(pid);
    if (found !== null) return found;
    const heap = this.module.HEAPU32;
    const table = this.clients.table;
    for (let index = 0; index < ENTRIES; index++) {
      const entry = this.entryAt(index);
      const holder = heap[entry + PID]!;
      if (holder !== 0 && (table === null || table.find(holder) !== null || this.owns(holder))) continue;
      const prepared = heap[entry + PREPARED]!;
      if (prepared !== 0 && this.module._hash_get_num_entries(prepared) > 0) heap[entry + PREPARED] = 0;
      const portals = heap[entry + PORTALS]!;
      if (portals === 0 || this.module._hash_get_num_entries(portals) > 0) {
        const made = this.newPortalTable();
        if (made === 0) return null;
        this.module.HEAPU32[entry + PORTALS] = made;
      }
      this.module.HEAPU32[entry + PID] = pid;
      return entry;
    }
    return null;
  }

  private findEntry(pid: number): number | null {
    const heap = this.module.HEAPU32;
    for (let index = 0; index < ENTRIES; index++) {
      const entry = this.entryAt(index);
      if (heap[entry + PID] === pid) return entry;
    }
    return null;
  }

  /** Whether `pid`'s tables are the ones in place. */
  private owns(pid: number): boolean {
    const heap = this.module.HEAPU32;
    const record = this.record >> 2;
    return heap[record + PREPARED_OWNER] === pid || heap[record + PORTALS_OWNER] === pid;
  }

  private entryAt(index: number): number {
    return (this.record >> 2) + HEADER_WORDS + index * ENTRY_WORDS;
  }

  private inTransaction(): boolean {
    return this.module._IsTransactionState() !== 0 || this.module._IsTransactionBlock() !== 0;
  }

  private newPortalTable(): number {
    return this.module._hash_create(
      this.portalName,
      PORTALS_PER_USER,
      this.portalControl,
      HASH_ELEM | HASH_STRINGS,
    );
  }

  /** Whether `table` hashes, compares and copies keys with the functions of the engine's own portal table. */
  private madeLikeEngines(table: number): boolean {
    if (table === 0) return false;
    const heap = this.module.HEAPU32;
    const engines = heap[(this.record >> 2) + ENGINE_PORTALS]!;
    return HTAB_FUNCTIONS.every((offset) => heap[(table + offset) >> 2] === heap[(engines + offset) >> 2]);
  }
}

const installed = new WeakMap<PGlite, ClientObjects>();

function hasEntryPoints(module: Partial<ObjectsModule>): module is ObjectsModule {
  return (
    module.HEAPU32 !== undefined &&
    typeof module._MyProcPid === 'number' &&
    typeof module._malloc === 'function' &&
    typeof module._hash_create === 'function' &&
    typeof module._hash_get_num_entries === 'function' &&
    typeof module._IsTransactionState === 'function' &&
    typeof module._IsTransactionBlock === 'function'
  );
}

/** The one static word near MyProcPid that points to a hash table named `name`; null when none or several. */
function findTableStatic(module: ObjectsModule, name: string): number | null {
  const heap = module.HEAPU32;
  const bytes = module.HEAPU8;
  const wanted = Buffer.from(`${name}\0`, 'latin1');
  const base =
    typeof module.___memory_base === 'number' ? module.___memory_base : module.___memory_base.value;
  const from = Math.max(base, module._MyProcPid - SEARCH_BYTES) >> 2;
  const to = Math.min(heap.length, (module._MyProcPid + SEARCH_BYTES) >> 2);
  let found: number | null = null;
  for (let slot = from; slot < to; slot++) {
    const table = heap[slot]!;
    if (table < base || table + HTAB_NAME + 4 > bytes.length || table % 4 !== 0) continue;
    const tableName = heap[(table + HTAB_NAME) >> 2]!;
    if (tableName + wanted.length > bytes.length) continue;
    if (!wanted.equals(bytes.subarray(tableName, tableName + wanted.length))) continue;
    if (found !== null) return null;
    found = slot << 2;
  }
  return found;
}
