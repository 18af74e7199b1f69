// Each client's own prepared statements, portals (cursors) and temporary schema in the one engine
// session. On a server every backend has its own: PREPARE, DECLARE, DEALLOCATE ALL, CLOSE ALL,
// pg_cursors, pg_prepared_statements and pg_temp see only that backend's. PostgreSQL keeps them
// in two hash tables and a temporary schema that statics of prepare.c, portalmem.c and namespace.c
// name; around each of a client's calls this module makes those the client's own, so whatever SQL
// a client runs (built at run time too, in a DO block or a function) sees and touches its own
// objects only. (client-temp-schemas.ts has what temporary schemas need besides.)
//
// Portals and temporary schemas belong to transactions (PostgreSQL cleans them up at commit and
// abort), so a client's are put in place only while no transaction is open: a client's transaction
// runs to its end with them in place (the proxy lets no other client in meanwhile), and under a
// test's outer transaction the clients share the engine's as before.
//
// The statics are not exported: they are found once per engine start as the words near the
// exported MyProcPid that point to a hash table of that name. The record of whose table is whose
// lives in the engine's own memory, so a snapshot restore puts it back together with the tables.
// Private engine parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import type { ClientTableHolder } from './client-table.js';
import { TempSchemas } from './client-temp-schemas.js';
import { EngineInterrupts } from './engine-interrupts.js';
import { findTableStatic } from './engine-statics.js';
import { guardTempSchemas } from './temp-schema-guard.js';

interface ObjectsModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  _MyProcPid: number;
  _malloc(size: number): number;
  _hash_create(name: number, entries: number, control: number, flags: number): number;
  _hash_get_num_entries(table: number): number;
  _IsTransactionState(): number;
  _IsTransactionBlock(): number;
}

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

/**
 * The record in engine memory: a header, then one entry a client. Words. The session's own
 * temporary schema is also the one of clients that have none of their own yet.
 */
const ENGINE_PREPARED = 0;
const ENGINE_PORTALS = 1;
/** A temporary schema takes two words: the schema, then its toast schema. */
const ENGINE_TEMP = 2;
const PREPARED_OWNER = 4;
/** Whose portals and temporary schema are in place: they move only between transactions. */
const SESSION_OWNER = 5;
const HEADER_WORDS = 6;
const PID = 0;
const PREPARED = 1;
const PORTALS = 2;
const TEMP = 3;
const ENTRY_WORDS = 5;
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
    private readonly temps: TempSchemas,
  ) {}

  static of(engine: PGlite): ClientObjects | undefined {
    return installed.get(engine);
  }

  /**
   * Finds the statics (the prepared statement table exists once something was prepared: a probe
   * is) and proves that a portal table made here is made as the engine makes its own.
   */
  static async install(
    engine: PGlite,
    clients: ClientTableHolder,
    engineOid: number,
  ): Promise<ClientObjects | undefined> {
    const module = (engine as unknown as { mod?: Partial<ObjectsModule> }).mod;
    if (!module || !hasEntryPoints(module)) return undefined;
    const functionTable = EngineInterrupts.of(module)?.functionTable ?? null;
    const temps = await TempSchemas.install(engine, functionTable, engineOid);
    if (!temps) return undefined;
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
      temps,
    );
    const heap = module.HEAPU32;
    heap[(record >> 2) + ENGINE_PREPARED] = heap[preparedStatic >> 2]!;
    heap[(record >> 2) + ENGINE_PORTALS] = heap[portalStatic >> 2]!;
    if (!objects.madeLikeEngines(objects.newPortalTable())) return undefined;
    if (!guardTempSchemas(module, (schema) => objects.isOtherClientsSchema(schema))) return undefined;
    installed.set(engine, objects);
    return objects;
  }

  /**
   * Puts client `pid`'s prepared statements, portals and temporary schema in place of the
   * session's (`pid` 0: the engine's own), for the calls that follow. They stay until another's
   * are put in place: a client's calls one after another switch nothing. `exec` runs SQL on the
   * engine (to give a client's new temporary schema its name).
   */
  enterFor(pid: number, exec: (bytes: Uint8Array) => Uint8Array): void {
    this.enter(pid, exec);
  }

  private enter(pid: number, exec: (bytes: Uint8Array) => Uint8Array): void {
    const record = this.record >> 2;
    const heap = this.module.HEAPU32;
    const moveSession = heap[record + SESSION_OWNER] !== pid && !this.inTransaction();
    if (heap[record + PREPARED_OWNER] === pid && !moveSession) return;
    // A client without an entry (none free) uses the session's own objects.
    const entry = this.entryOf(pid);
    const owner = entry === null ? ENGINE : pid;
    // A new portal table may have grown the memory: a fresh view of it.
    const words = this.module.HEAPU32;
    const preparedOwner = words[record + PREPARED_OWNER]!;
    if (preparedOwner !== owner) {
      // PostgreSQL makes the prepared statement table on first use: what it made goes to its owner.
      const ownerSlot = this.preparedSlot(preparedOwner);
      if (ownerSlot !== null) words[ownerSlot] = words[this.preparedStatic >> 2]!;
      words[this.preparedStatic >> 2] = words[entry === null ? record + ENGINE_PREPARED : entry + PREPARED]!;
      words[record + PREPARED_OWNER] = owner;
    }
    if (moveSession && words[record + SESSION_OWNER] !== owner) {
      this.keepTempSchema(exec);
      const next = this.module.HEAPU32;
      next[this.portalStatic >> 2] = next[entry === null ? record + ENGINE_PORTALS : entry + PORTALS]!;
      const own = entry === null ? 0 : next[entry + TEMP]!;
      const temp = own === 0 ? record + ENGINE_TEMP : entry! + TEMP;
      const schema = { schema: next[temp]!, toast: next[temp + 1]! };
      const current = this.temps.current();
      if (current.schema !== schema.schema || current.toast !== schema.toast) this.temps.set(schema);
      next[record + SESSION_OWNER] = owner;
    }
  }

  /**
   * Notes the temporary schema of the session's owner as it leaves. A client that had none and
   * made one gets it renamed as its own; when that fails, the schema stays the session's, shared
   * by every client without one of its own (PostgreSQL would empty it for the next one otherwise).
   */
  private keepTempSchema(exec: (bytes: Uint8Array) => Uint8Array): void {
    const record = this.record >> 2;
    const owner = this.module.HEAPU32[record + SESSION_OWNER]!;
    const current = this.temps.current();
    const entry = owner === ENGINE ? null : this.findEntry(owner);
    let slot = record + ENGINE_TEMP;
    if (entry !== null && this.module.HEAPU32[entry + TEMP] !== 0) slot = entry + TEMP;
    else if (entry !== null && current.schema !== 0 && current.schema !== this.module.HEAPU32[slot]) {
      if (this.temps.adopt(current, this.indexOf(entry), exec)) slot = entry + TEMP;
    }
    const heap = this.module.HEAPU32;
    heap[slot] = current.schema;
    heap[slot + 1] = current.toast;
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
      // A former client's temporary schema is dropped when this one's is named.
      this.module.HEAPU32.fill(0, entry + TEMP, entry + TEMP + 2);
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
    return heap[record + PREPARED_OWNER] === pid || heap[record + SESSION_OWNER] === pid;
  }

  /** Whether `schema` is the temporary schema (or its toast schema) of a client other than the current one. */
  private isOtherClientsSchema(schema: number): boolean {
    const current = this.temps.current();
    if (schema === current.schema || schema === current.toast) return false;
    const heap = this.module.HEAPU32;
    const record = this.record >> 2;
    if (heap[record + ENGINE_TEMP] === schema || heap[record + ENGINE_TEMP + 1] === schema) return true;
    for (let index = 0; index < ENTRIES; index++) {
      const entry = this.entryAt(index);
      if (heap[entry + TEMP] === schema || heap[entry + TEMP + 1] === schema) return true;
    }
    return false;
  }

  private indexOf(entry: number): number {
    return (entry - (this.record >> 2) - HEADER_WORDS) / ENTRY_WORDS;
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
