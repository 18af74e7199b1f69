// Advisory locks per client. On a server each backend holds its own: pg_try_advisory_lock(1) is
// false while another session holds lock 1, and an unlock releases only one's own. The engine's
// lock manager has one session for all the proxy's clients, so the advisory lock built-ins are
// replaced with these, which keep the holders by client pid (job queues and migration tools rely
// on them to exclude each other):
//
// - session locks are re-entrant and counted, released by unlock, pg_advisory_unlock_all() and
//   when the client leaves (the proxy calls pg_advisory_unlock_all() as the client);
// - transaction locks end with the engine's transaction (one at a time: the one running), or
//   with the savepoint they were taken after, when it is rolled back;
// - exclusive conflicts with another client's shared or exclusive hold, shared with exclusive.
//
// A client cannot wait inside the engine for a lock another client holds: that client can only
// release it in a call of its own, which cannot run while the waiting one holds the engine. The
// blocking forms then fail with lock_not_available (55P03), naming the holder, and leave a note in
// the client table: the proxy runs a statement that ran outside a transaction block again once a
// lock was released (so it waits as on a server, up to lock_timeout), and passes the error on for
// one inside a transaction block. Private engine parts: tests/engine-internals.test.ts watches them.
import { type BuiltinFunction, replaceBuiltins } from './builtin-functions.js';
import type { ClientTableHolder } from './client-table.js';
import { ERROR, REPORTING_ENTRY_POINTS, type ReportingModule, report, WARNING } from './engine-errors.js';

interface LockModule extends ReportingModule {
  HEAPU32: Uint32Array;
  HEAP32: Int32Array;
  HEAP16: Int16Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  _RegisterXactCallback(callback: number, arg: number): void;
  _RegisterSubXactCallback(callback: number, arg: number): void;
  _GetCurrentSubTransactionId(): number;
}

/** FunctionCallInfoBaseData.args on wasm32, and the size of a NullableDatum. */
const FCINFO_ARGS = 20;
const NULLABLE_DATUM_BYTES = 8;
/** SubXactEvent's SUBXACT_EVENT_ABORT_SUB. */
const SUBXACT_ABORT = 2;
/** XactEvent values that end a transaction: commit, parallel commit, abort, parallel abort, prepare. */
const ENDING_EVENTS = new Set([0, 1, 2, 3, 4]);
/** The engine's own session (calls not made for a client). */
const ENGINE_PID = 0;

type Mode = 'exclusive' | 'shared';

/** A lock as pg_locks shows an advisory one: its key as classid, objid and objsubid. */
export interface HeldLock {
  pid: number;
  mode: Mode;
  classid: bigint;
  objid: bigint;
  /** 1 for an int8 key, 2 for a pair of int4 keys. */
  objsubid: 1 | 2;
}
type Scope = 'session' | 'transaction';

/**
 * How many times one client holds one lock, by scope and mode; a transaction hold as the
 * subtransaction it was taken in (a rollback to a savepoint before it releases it).
 */
interface Holds {
  session: Record<Mode, number>;
  transaction: Record<Mode, number[]>;
}

const heldIn = (holds: Holds, mode: Mode) => holds.session[mode] + holds.transaction[mode].length;

export class AdvisoryLocks {
  /** Holders of each lock, by the lock's key (int8 keys and int4 pairs are apart, as in PostgreSQL). */
  private readonly locks = new Map<string, Map<number, Holds>>();

  constructor(
    private readonly clients: ClientTableHolder,
    /** The pid of the client the running call is for (ENGINE_PID for the engine's own). */
    private readonly callerPid: () => number,
    /** The running subtransaction's id (they only grow within a transaction). */
    private readonly subtransaction: () => number = () => 1,
  ) {}

  /** Takes the lock, or says who holds it in a way that conflicts: null when taken. */
  take(key: string, mode: Mode, scope: Scope): number | null {
    const pid = this.callerPid();
    const holders = this.locks.get(key) ?? new Map<number, Holds>();
    for (const [holder, holds] of holders) {
      if (holder === pid) continue;
      if (this.left(holder)) {
        holders.delete(holder);
        continue;
      }
      const exclusive = heldIn(holds, 'exclusive') > 0;
      const shared = heldIn(holds, 'shared') > 0;
      if (exclusive || (mode === 'exclusive' && shared)) return holder;
    }
    const holds = holders.get(pid) ?? {
      session: { exclusive: 0, shared: 0 },
      transaction: { exclusive: [], shared: [] },
    };
    if (scope === 'session') holds.session[mode]++;
    else holds.transaction[mode].push(this.subtransaction());
    holders.set(pid, holds);
    this.locks.set(key, holders);
    return null;
  }

  /** Releases one session hold of the caller's; false when it has none. */
  release(key: string, mode: Mode): boolean {
    const holders = this.locks.get(key);
    const holds = holders?.get(this.callerPid());
    if (!holds || holds.session[mode] === 0) return false;
    holds.session[mode]--;
    this.forgetIfFree(key, this.callerPid());
    this.clients.table?.locksReleased();
    return true;
  }

  /** pg_advisory_unlock_all(): every session lock of the caller's. */
  releaseSessionLocks(): void {
    const pid = this.callerPid();
    let released = false;
    for (const [key, holders] of this.locks) {
      const holds = holders.get(pid);
      if (!holds) continue;
      released ||= holds.session.exclusive + holds.session.shared > 0;
      holds.session = { exclusive: 0, shared: 0 };
      this.forgetIfFree(key, pid);
    }
    if (released) this.clients.table?.locksReleased();
  }

  /** Notes that the caller would wait for a lock `holder` holds, for the proxy to act on. */
  wouldWait(holder: number): void {
    this.clients.table?.lockWaited(this.callerPid(), holder);
  }

  /** The engine's transaction ended: every transaction lock goes (there is one transaction at a time). */
  transactionEnded(): void {
    this.releaseTransactionLocks(0);
  }

  /** A savepoint was rolled back: the transaction locks taken since go, as on a server. */
  rolledBackTo(subtransaction: number): void {
    this.releaseTransactionLocks(subtransaction);
  }

  /** Releases the transaction holds taken in subtransaction `from` or after it. */
  private releaseTransactionLocks(from: number): void {
    // Every transaction's end comes here; most took no lock.
    if (this.locks.size === 0) return;
    let released = false;
    for (const [key, holders] of this.locks) {
      for (const [pid, holds] of holders) {
        for (const mode of ['exclusive', 'shared'] as const) {
          const kept = holds.transaction[mode].filter((taken) => taken < from);
          released ||= kept.length < holds.transaction[mode].length;
          holds.transaction[mode] = kept;
        }
        this.forgetIfFree(key, pid);
      }
    }
    if (released) this.clients.table?.locksReleased();
  }

  private forgetIfFree(key: string, pid: number): void {
    const holders = this.locks.get(key);
    const holds = holders?.get(pid);
    if (!holders || !holds) return;
    if (heldIn(holds, 'exclusive') + heldIn(holds, 'shared') === 0) holders.delete(pid);
    if (holders.size === 0) this.locks.delete(key);
  }

  /** Every lock held, by holder and mode (once however many times it is held), as pg_locks lists them. */
  held(): HeldLock[] {
    const held: HeldLock[] = [];
    for (const [key, holders] of this.locks) {
      const [kind, first, second] = key.split(':');
      // As PostgreSQL shows them: an int8 key's high and low words, or the two int4 keys, as oids.
      const words =
        kind === '8'
          ? [BigInt.asUintN(32, BigInt(first!) >> 32n), BigInt.asUintN(32, BigInt(first!))]
          : [BigInt.asUintN(32, BigInt(first!)), BigInt.asUintN(32, BigInt(second!))];
      for (const [pid, holds] of holders) {
        if (this.left(pid)) continue;
        for (const mode of ['exclusive', 'shared'] as const) {
          if (heldIn(holds, mode) === 0) continue;
          held.push({ pid, mode, classid: words[0]!, objid: words[1]!, objsubid: kind === '8' ? 1 : 2 });
        }
      }
    }
    return held;
  }

  /** Whether `pid` is a client that has left (its locks went with it). */
  private left(pid: number): boolean {
    const table = this.clients.table;
    return pid !== ENGINE_PID && table !== null && table.find(pid) === null;
  }
}

/** One advisory lock built-in: its pg_proc entry and what it does. */
interface LockFunction extends BuiltinFunction {
  action: 'lock' | 'try' | 'unlock';
  mode: Mode;
  scope: Scope;
}

function lockFunctions(): LockFunction[] {
  const found: LockFunction[] = [];
  const add = (oid: number, name: string, action: LockFunction['action'], mode: Mode, scope: Scope) => {
    found.push({ oid, name: `${name}_int8`, nargs: 1, action, mode, scope });
    // Each int8 form's (int4, int4) twin: pg_proc numbers them in the same order.
    const twin = scope === 'session' ? oid + 6 : oid + 4;
    found.push({ oid: twin, name: `${name}_int4`, nargs: 2, action, mode, scope });
  };
  add(2880, 'pg_advisory_lock', 'lock', 'exclusive', 'session');
  add(2881, 'pg_advisory_lock_shared', 'lock', 'shared', 'session');
  add(2882, 'pg_try_advisory_lock', 'try', 'exclusive', 'session');
  add(2883, 'pg_try_advisory_lock_shared', 'try', 'shared', 'session');
  add(2884, 'pg_advisory_unlock', 'unlock', 'exclusive', 'session');
  add(2885, 'pg_advisory_unlock_shared', 'unlock', 'shared', 'session');
  add(3089, 'pg_advisory_xact_lock', 'lock', 'exclusive', 'transaction');
  add(3090, 'pg_advisory_xact_lock_shared', 'lock', 'shared', 'transaction');
  add(3091, 'pg_try_advisory_xact_lock', 'try', 'exclusive', 'transaction');
  add(3092, 'pg_try_advisory_xact_lock_shared', 'try', 'shared', 'transaction');
  return found;
}

const UNLOCK_ALL: BuiltinFunction = { oid: 2892, name: 'pg_advisory_unlock_all', nargs: 0 };

/**
 * Replaces the engine's advisory lock built-ins with per-client ones; null when they cannot all
 * be installed (then none is: a mix would split one lock in two).
 */
export function installAdvisoryLocks(
  module: object,
  clients: ClientTableHolder,
  callerPid: () => number,
): AdvisoryLocks | null {
  const engine = module as Partial<LockModule>;
  if (
    REPORTING_ENTRY_POINTS.some((name) => typeof engine[name] !== 'function') ||
    typeof engine.addFunction !== 'function' ||
    typeof engine._RegisterXactCallback !== 'function' ||
    typeof engine._RegisterSubXactCallback !== 'function' ||
    typeof engine._GetCurrentSubTransactionId !== 'function'
  )
    return null;
  const locking = engine as LockModule;
  const locks = new AdvisoryLocks(clients, callerPid, () => locking._GetCurrentSubTransactionId());
  const replacements: Array<[BuiltinFunction, (fcinfo: number) => number]> = lockFunctions().map((fn) => [
    fn,
    (fcinfo) => call(locking, locks, fn, fcinfo),
  ]);
  replacements.push([
    UNLOCK_ALL,
    () => {
      locks.releaseSessionLocks();
      return 0;
    },
  ]);
  if (!replaceBuiltins(locking, replacements)) return null;
  locking._RegisterXactCallback(
    locking.addFunction((event: number) => {
      if (ENDING_EVENTS.has(event)) locks.transactionEnded();
    }, 'vii'),
    0,
  );
  locking._RegisterSubXactCallback(
    locking.addFunction((event: number, subtransaction: number) => {
      if (event === SUBXACT_ABORT) locks.rolledBackTo(subtransaction);
    }, 'viiii'),
    0,
  );
  return locks;
}

/** One call of a replaced built-in: the Datum it returns. */
function call(engine: LockModule, locks: AdvisoryLocks, fn: LockFunction, fcinfo: number): number {
  const key = lockKey(engine, fn, fcinfo);
  if (fn.action === 'unlock') {
    if (locks.release(key.id, fn.mode)) return 1;
    const type = fn.mode === 'exclusive' ? 'ExclusiveLock' : 'ShareLock';
    report(engine, WARNING, '01000', `you don't own a lock of type ${type}`);
    return 0;
  }
  const holder = locks.take(key.id, fn.mode, fn.scope);
  if (holder === null) return 1;
  if (fn.action === 'try') return 0;
  locks.wouldWait(holder);
  report(
    engine,
    ERROR,
    '55P03',
    `could not obtain ${fn.mode === 'shared' ? 'shared ' : ''}advisory lock ${key.shown}`,
    `Client ${holder} holds it. pglite-oxide runs a database's clients on one engine session: a statement outside a transaction block waits for the lock (up to lock_timeout), one inside a transaction block cannot, as the holder could not run to release it. Take the lock before BEGIN, or use pg_try_advisory_lock() and try again.`,
  );
  return 0;
}

/** The lock's key (int8 keys and int4 pairs apart) and how a message shows it. */
function lockKey(engine: LockModule, fn: LockFunction, fcinfo: number): { id: string; shown: string } {
  if (fn.nargs === 1) {
    // An int8 argument is passed by reference on wasm32: the low word, then the high one.
    const pointer = engine.HEAPU32[(fcinfo + FCINFO_ARGS) >> 2]!;
    const low = BigInt(engine.HEAPU32[pointer >> 2]!);
    const value = (BigInt(engine.HEAP32[(pointer + 4) >> 2]!) << 32n) | low;
    return { id: `8:${value}`, shown: `${value}` };
  }
  const first = engine.HEAP32[(fcinfo + FCINFO_ARGS) >> 2]!;
  const second = engine.HEAP32[(fcinfo + FCINFO_ARGS + NULLABLE_DATUM_BYTES) >> 2]!;
  return { id: `4:${first}:${second}`, shown: `(${first}, ${second})` };
}
