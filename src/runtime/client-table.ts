// The proxy's clients as the engines see them: each client's pid (the one in its BackendKeyData,
// which pg_backend_pid() answers), login role and activity (what pg_stat_activity shows, see
// client-activity.ts). The table lives in shared memory, so an engine in a thread of its own
// reads it where its built-ins run, and the signals those built-ins send (pg_cancel_backend,
// pg_terminate_backend) are left in it for the proxy to deliver once the call is over. The engines
// also leave in it what the proxy must read back from them: which clients' LISTEN channels and
// session settings changed, and the names of the custom settings clients set (see
// client-settings.ts), and when roles changed (see role-changes.ts).

import { ACTIVITY_BYTES, ActivityWriter, type ClientActivity, readActivity } from './client-activity.js';

/** What a signal asks of a client. */
export type ClientSignal = 'cancel' | 'terminate';

const SLOTS = 1024;
const SLOT_INTS = 6;
/** Fields of a slot. */
const PID = 0;
const ROLE = 1;
const SIGNAL = 2;
/** Counts changes of the client's LISTEN channels (see client-channels.ts). */
const CHANNELS = 3;
/** Counts changes of the client's session settings, by any path (see client-settings.ts). */
const SETTINGS = 4;
/** The client's last call found an advisory lock it would wait for: the holder's pid (see advisory-locks.ts). */
const LOCK_WAIT = 5;
/** Header: how many signals wait to be delivered. */
const PENDING = 0;
/** Header: held while an engine adds a custom setting's name; the bytes of names written. */
const NAMES_LOCK = 1;
const NAMES_END = 2;
/** Header: counts releases of advisory locks, for the proxy to wake clients that wait for one. */
const LOCKS_RELEASED = 3;
/** Header: counts changes of roles in any engine, for the proxy to read its copy of them again (see role-changes.ts). */
const ROLES_CHANGED = 4;
/** Room for custom settings' names, each ending with a NUL byte: a few thousand names. */
const NAMES_BYTES = 64 * 1024;
const HEADER_INTS = 5;
const SIGNAL_BITS: Record<ClientSignal, number> = { cancel: 1, terminate: 2 };
/** Where the activity records start: after the slots, 8-byte aligned. */
const ACTIVITY_START = Math.ceil(((HEADER_INTS + SLOTS * SLOT_INTS) * 4) / 8) * 8;
const NAMES_START = ACTIVITY_START + SLOTS * ACTIVITY_BYTES;

/** A listed client, as the proxy holds it. */
export interface TableEntry {
  /** What pg_stat_activity shows of it. */
  readonly activity: ActivityWriter;
  /** Changes when its LISTEN channels change: they are then read again. */
  channelsVersion(): number;
  /** Changes when its session settings change: they are then read again. */
  settingsVersion(): number;
  /** The holder of the advisory lock its last call would have waited for, once; 0 when none. */
  takeLockWait(): number;
}

/** A client found in the table. */
export interface TableClient {
  pid: number;
  /** Its login role's oid. */
  role: number;
}

export class ClientTable {
  private readonly ints: Int32Array;
  /** Custom setting names as last read, and how many bytes of the list that was. */
  private names: string[] = [];
  private namesRead = 0;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(NAMES_START + NAMES_BYTES)) {
    this.ints = new Int32Array(buffer);
  }

  /**
   * Lists a client and returns its entry; null when the table is full (it then cannot be
   * signalled by pid, pg_stat_activity does not show it, and its channels are read from its SQL).
   */
  add(client: TableClient): TableEntry | null {
    for (let slot = 0; slot < SLOTS; slot++) {
      const at = this.at(slot);
      if (Atomics.compareExchange(this.ints, at + PID, 0, client.pid) !== 0) continue;
      Atomics.store(this.ints, at + ROLE, client.role);
      Atomics.store(this.ints, at + SIGNAL, 0);
      Atomics.store(this.ints, at + CHANNELS, 0);
      Atomics.store(this.ints, at + SETTINGS, 0);
      Atomics.store(this.ints, at + LOCK_WAIT, 0);
      return {
        activity: new ActivityWriter(this.buffer, ACTIVITY_START + slot * ACTIVITY_BYTES),
        channelsVersion: () => Atomics.load(this.ints, at + CHANNELS),
        settingsVersion: () => Atomics.load(this.ints, at + SETTINGS),
        takeLockWait: () => Atomics.exchange(this.ints, at + LOCK_WAIT, 0),
      };
    }
    return null;
  }

  /** Notes that client `pid`'s LISTEN channels changed (the engine's side). */
  channelsChanged(pid: number): void {
    const slot = this.slotOf(pid);
    if (slot >= 0) Atomics.add(this.ints, this.at(slot) + CHANNELS, 1);
  }

  /** Notes that client `pid`'s session settings changed (the engine's side). */
  settingsChanged(pid: number): void {
    const slot = this.slotOf(pid);
    if (slot >= 0) Atomics.add(this.ints, this.at(slot) + SETTINGS, 1);
  }

  /** Notes that client `pid` would wait for an advisory lock `holder` holds (the engine's side). */
  lockWaited(pid: number, holder: number): void {
    const slot = this.slotOf(pid);
    if (slot >= 0) Atomics.store(this.ints, this.at(slot) + LOCK_WAIT, holder);
  }

  /** Notes that advisory locks were released (the engine's side). */
  locksReleased(): void {
    Atomics.add(this.ints, LOCKS_RELEASED, 1);
  }

  /** Notes that roles may have changed (the engine's side). */
  rolesChanged(): void {
    Atomics.add(this.ints, ROLES_CHANGED, 1);
  }

  /** Changes when roles may have changed in any engine. */
  rolesVersion(): number {
    return Atomics.load(this.ints, ROLES_CHANGED);
  }

  /** Changes when any engine released advisory locks. */
  locksReleasedVersion(): number {
    return Atomics.load(this.ints, LOCKS_RELEASED);
  }

  /**
   * Adds a custom setting's name (lower case) to those the proxy reads a client's values of,
   * unless it is there; false when there is no room left (the engine then refuses the setting).
   */
  addSettingName(name: string): boolean {
    if (this.settingNames().includes(name)) return true;
    const bytes = Buffer.from(`${name}\0`, 'utf8');
    // Engines in other threads add names too: one at a time, each written before it is counted.
    while (Atomics.compareExchange(this.ints, NAMES_LOCK, 0, 1) !== 0);
    try {
      if (this.settingNames().includes(name)) return true;
      const end = Atomics.load(this.ints, NAMES_END);
      if (end + bytes.length > NAMES_BYTES) return false;
      new Uint8Array(this.buffer, NAMES_START + end, bytes.length).set(bytes);
      Atomics.store(this.ints, NAMES_END, end + bytes.length);
      return true;
    } finally {
      Atomics.store(this.ints, NAMES_LOCK, 0);
    }
  }

  /** The custom settings' names any client of any engine set, in lower case. */
  settingNames(): readonly string[] {
    const end = Atomics.load(this.ints, NAMES_END);
    if (end !== this.namesRead) {
      const bytes = Buffer.from(this.buffer, NAMES_START, end);
      // A SharedArrayBuffer's bytes are copied before they are decoded.
      this.names = Buffer.from(bytes).toString('utf8').split('\0').slice(0, -1);
      this.namesRead = end;
    }
    return this.names;
  }

  /** Every listed client with its activity, in the order of the table. */
  activities(): Array<TableClient & { activity: ClientActivity }> {
    const listed: Array<TableClient & { activity: ClientActivity }> = [];
    for (let slot = 0; slot < SLOTS; slot++) {
      const at = this.at(slot);
      const pid = Atomics.load(this.ints, at + PID);
      if (pid === 0) continue;
      const activity = readActivity(this.buffer, ACTIVITY_START + slot * ACTIVITY_BYTES);
      if (activity) listed.push({ pid, role: Atomics.load(this.ints, at + ROLE) >>> 0, activity });
    }
    return listed;
  }

  remove(pid: number): void {
    const slot = this.slotOf(pid);
    if (slot >= 0) Atomics.store(this.ints, this.at(slot) + PID, 0);
  }

  find(pid: number): TableClient | null {
    const slot = this.slotOf(pid);
    if (slot < 0) return null;
    return { pid, role: Atomics.load(this.ints, this.at(slot) + ROLE) >>> 0 };
  }

  /** Leaves `signal` for client `pid`; false when there is no such client. */
  signal(pid: number, signal: ClientSignal): boolean {
    const slot = this.slotOf(pid);
    if (slot < 0) return false;
    Atomics.or(this.ints, this.at(slot) + SIGNAL, SIGNAL_BITS[signal]);
    Atomics.add(this.ints, PENDING, 1);
    return true;
  }

  /** The signals left since the last look, for the proxy to deliver; cheap when there are none. */
  takeSignals(): Array<{ pid: number; signal: ClientSignal }> {
    if (Atomics.load(this.ints, PENDING) === 0) return [];
    Atomics.store(this.ints, PENDING, 0);
    const taken: Array<{ pid: number; signal: ClientSignal }> = [];
    for (let slot = 0; slot < SLOTS; slot++) {
      const at = this.at(slot);
      const bits = Atomics.exchange(this.ints, at + SIGNAL, 0);
      if (bits === 0) continue;
      const pid = Atomics.load(this.ints, at + PID);
      // Terminating makes a cancel moot.
      taken.push({ pid, signal: bits & SIGNAL_BITS.terminate ? 'terminate' : 'cancel' });
    }
    return taken;
  }

  private slotOf(pid: number): number {
    if (pid === 0) return -1;
    for (let slot = 0; slot < SLOTS; slot++)
      if (Atomics.load(this.ints, this.at(slot) + PID) === pid) return slot;
    return -1;
  }

  private at(slot: number): number {
    return HEADER_INTS + slot * SLOT_INTS;
  }
}

/**
 * Where an engine finds the proxy's client table: set once the proxy serves the engine, and kept
 * across the engine's restarts (each new engine reads it through the same holder).
 */
export interface ClientTableHolder {
  table: ClientTable | null;
}
