// What each client is doing, as pg_stat_activity shows it: the proxy writes it (at login, when a
// query starts, when the client is ready again), the engine's pg_stat_get_activity reads it. It
// lives in the client table's shared memory, one fixed-size record a client, so an engine in a
// thread of its own reads it without asking the proxy, and a query's start costs a copy of its
// first bytes and a few stores. A record is written by the proxy's thread only; a reader retries
// when it saw a write in progress (the record's version is odd then, or changed meanwhile).

/** The states pg_stat_activity names, by their code in a record. */
const STATES = ['idle', 'active', 'idle in transaction', 'idle in transaction (aborted)'] as const;
const WAITS = [null, 'engine', 'advisory'] as const;
export type ActivityState = (typeof STATES)[number];

/** Transaction status of ReadyForQuery: idle, in a transaction, in a failed transaction. */
export type TransactionStatus = 'I' | 'T' | 'E';
const READY_STATES: Record<TransactionStatus, number> = { I: 0, T: 2, E: 3 };

/** PostgreSQL's track_activity_query_size default: a query is cut to one byte less. */
const QUERY_BYTES = 1023;
/** NAMEDATALEN - 1: names and application_name are cut to this. */
const NAME_BYTES = 63;

/** Byte offsets in a record. */
const VERSION = 0;
const STATE = 4;
const PORT = 8;
const WAITING = 12;
const BACKEND_START = 16;
const XACT_START = 24;
const QUERY_START = 32;
const STATE_CHANGE = 40;
/** Texts: a 16-bit length, then the bytes. */
const USER = 48;
const DATABASE = USER + 2 + NAME_BYTES;
const APPLICATION = DATABASE + 2 + NAME_BYTES;
const ADDRESS = APPLICATION + 2 + NAME_BYTES;
const QUERY = ADDRESS + 2 + NAME_BYTES;
/** A record's size, a multiple of 8 so that its times stay aligned. */
export const ACTIVITY_BYTES = Math.ceil((QUERY + 2 + QUERY_BYTES) / 8) * 8;

/** What pg_stat_activity shows of one client. Times are milliseconds since the epoch; null when none. */
export interface ClientActivity {
  user: string;
  database: string;
  applicationName: string;
  /** The client's address; null for a Unix socket. */
  address: string | null;
  /** Its TCP port; -1 for a Unix socket. */
  port: number;
  state: ActivityState;
  /**
   * What it waits for: its turn on the engine (another client holds it), an advisory lock another
   * client holds, or nothing.
   */
  waiting: 'engine' | 'advisory' | null;
  query: string;
  backendStart: number;
  xactStart: number | null;
  queryStart: number | null;
  stateChange: number;
}

/** Who a client is, written once at login. */
export interface ClientOrigin {
  user: string;
  database: string;
  applicationName: string;
  address: string | null;
  port: number;
}

/** Now, in milliseconds since the epoch with a fraction (pg_stat_activity shows microseconds). */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Writes one client's record: the proxy's side. */
export class ActivityWriter {
  private readonly bytes: Buffer;
  private readonly ints: Int32Array;
  private readonly times: Float64Array;
  private inTransaction = false;

  constructor(buffer: SharedArrayBuffer, offset: number) {
    this.bytes = Buffer.from(buffer, offset, ACTIVITY_BYTES);
    this.ints = new Int32Array(buffer, offset, ACTIVITY_BYTES / 4);
    this.times = new Float64Array(buffer, offset, ACTIVITY_BYTES / 8);
  }

  /** A client that has just logged in: idle. */
  loggedIn(origin: ClientOrigin): void {
    this.write(() => {
      const at = now();
      this.text(USER, origin.user, NAME_BYTES);
      this.text(DATABASE, origin.database, NAME_BYTES);
      this.text(APPLICATION, origin.applicationName, NAME_BYTES);
      this.text(ADDRESS, origin.address ?? '', NAME_BYTES);
      this.text(QUERY, '', QUERY_BYTES);
      this.ints[PORT >> 2] = origin.port;
      this.ints[STATE >> 2] = 0;
      this.ints[WAITING >> 2] = 0;
      this.times[BACKEND_START >> 3] = at;
      this.times[STATE_CHANGE >> 3] = at;
      this.times[XACT_START >> 3] = 0;
      this.times[QUERY_START >> 3] = 0;
      this.inTransaction = false;
    });
  }

  /** A query starts: `sql` as the client sent it (UTF-8), cut as PostgreSQL cuts it. */
  started(sql: Uint8Array | null): void {
    // Per unit: the record is changed in place, between the version's two steps, without a closure.
    this.changing();
    const at = now();
    if (sql) this.rawText(QUERY, sql, QUERY_BYTES);
    this.ints[STATE >> 2] = 1;
    this.times[QUERY_START >> 3] = at;
    this.times[STATE_CHANGE >> 3] = at;
    if (!this.inTransaction) this.times[XACT_START >> 3] = at;
    this.inTransaction = true;
    this.changed();
  }

  /** It waits for its turn on the engine or for an advisory lock, or (null) no longer does. */
  waiting(waits: 'engine' | 'advisory' | null): void {
    this.write(() => {
      this.ints[WAITING >> 2] = waits === 'engine' ? 1 : waits === 'advisory' ? 2 : 0;
    });
  }

  /** It is ready for its next query, in `status`. */
  ready(status: TransactionStatus): void {
    this.changing();
    this.ints[STATE >> 2] = READY_STATES[status];
    this.ints[WAITING >> 2] = 0;
    this.times[STATE_CHANGE >> 3] = now();
    this.inTransaction = status !== 'I';
    if (!this.inTransaction) this.times[XACT_START >> 3] = 0;
    this.changed();
  }

  named(applicationName: string): void {
    this.write(() => this.text(APPLICATION, applicationName, NAME_BYTES));
  }

  private write(change: () => void): void {
    this.changing();
    change();
    this.changed();
  }

  /** An odd version: a reader that sees it, or sees it change, reads again. */
  private changing(): void {
    Atomics.add(this.ints, VERSION, 1);
  }

  private changed(): void {
    Atomics.add(this.ints, VERSION, 1);
  }

  private text(at: number, value: string, limit: number): void {
    const length = this.bytes.write(value, at + 2, limit, 'utf8');
    this.bytes.writeUInt16LE(length, at);
  }

  private rawText(at: number, value: Uint8Array, limit: number): void {
    let length = Math.min(value.length, limit);
    // Not in the middle of a character: back to the start of the one cut.
    if (length < value.length) while (length > 0 && (value[length]! & 0xc0) === 0x80) length--;
    this.bytes.set(length === value.length ? value : value.subarray(0, length), at + 2);
    this.bytes.writeUInt16LE(length, at);
  }
}

/** Reads one client's record: the engine's side. Null when it kept changing while read. */
export function readActivity(buffer: SharedArrayBuffer, offset: number): ClientActivity | null {
  const bytes = Buffer.from(buffer, offset, ACTIVITY_BYTES);
  const ints = new Int32Array(buffer, offset, ACTIVITY_BYTES / 4);
  const times = new Float64Array(buffer, offset, ACTIVITY_BYTES / 8);
  const text = (at: number) => bytes.toString('utf8', at + 2, at + 2 + bytes.readUInt16LE(at));
  for (let attempt = 0; attempt < 100; attempt++) {
    const version = Atomics.load(ints, VERSION);
    if (version % 2 === 1) continue;
    const address = text(ADDRESS);
    const activity: ClientActivity = {
      user: text(USER),
      database: text(DATABASE),
      applicationName: text(APPLICATION),
      address: address === '' ? null : address,
      port: ints[PORT >> 2]!,
      state: STATES[ints[STATE >> 2]!] ?? 'idle',
      waiting: WAITS[ints[WAITING >> 2]!] ?? null,
      query: text(QUERY),
      backendStart: times[BACKEND_START >> 3]!,
      xactStart: times[XACT_START >> 3] || null,
      queryStart: times[QUERY_START >> 3] || null,
      stateChange: times[STATE_CHANGE >> 3]!,
    };
    if (Atomics.load(ints, VERSION) === version) return activity;
  }
  return null;
}
