// LISTEN channels and NOTIFY per client. On a server each backend listens on its own channels:
// pg_listening_channels() lists them, and an UNLISTEN (also UNLISTEN * and one in a DO block or a
// function) ends only the caller's. The engine has one session for all the proxy's clients, so
// here it listens on every channel any client ever listened on, and the clients' own channels are
// kept by pid, from what PostgreSQL itself runs: a ProcessUtility hook sees each LISTEN and
// UNLISTEN by any path, and they count once the transaction commits (in a savepoint rolled back,
// they do not). A client's UNLISTEN reaches the engine as one of a channel nobody listens on, so
// PostgreSQL checks it as it would, and the engine keeps delivering other clients' notifications.
// The proxy routes each notification to the clients of its channel: the client table tells it
// when a client's channels changed, and it reads them with pg_listening_channels(), which answers
// the caller's own.
//
// Under a test's transaction (isolation 'transaction': a transaction block the engine's own login
// began, with every client's work in savepoints inside it) nothing ever commits, so a client's
// work counts as committed when its savepoint is released into that block: when its statement
// outside a transaction of its own ends, or at its own COMMIT. Its LISTEN and UNLISTEN count then,
// and its notifications (NOTIFY and pg_notify() by any path, triggers too) are added to the
// output of the call that released them, for the proxy to route as the engine's own; what was
// rolled back is never sent, as on a server.
//
// The engine's own calls, and an engine no proxy serves, are PostgreSQL's alone. Private engine
// parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import { notificationResponse } from '../protocol/backend-writer.js';
import {
  ARGUMENTS_ENTRY_POINTS,
  type ArgumentsModule,
  type BuiltinFunction,
  textArgument,
  wrapBuiltin,
} from './builtin-functions.js';
import type { ClientTableHolder } from './client-table.js';
import { returnRows, SET_RETURNING_ENTRY_POINTS, type SetReturningModule } from './set-returning.js';
import type { UtilityHook, UtilityProbe } from './utility-hook.js';

interface ChannelModule extends SetReturningModule, ArgumentsModule {
  HEAP16: Int16Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  _RegisterXactCallback(callback: number, arg: number): void;
  _RegisterSubXactCallback(callback: number, arg: number): void;
  _GetCurrentSubTransactionId(): number;
}

const ENTRY_POINTS = [
  ...SET_RETURNING_ENTRY_POINTS,
  ...ARGUMENTS_ENTRY_POINTS,
  'addFunction',
  '_RegisterXactCallback',
  '_RegisterSubXactCallback',
  '_GetCurrentSubTransactionId',
] as const;

const PG_LISTENING_CHANNELS: BuiltinFunction = { oid: 3035, name: 'pg_listening_channels', nargs: 0 };
const PG_NOTIFY: BuiltinFunction = { oid: 3036, name: 'pg_notify', nargs: 2 };
/** The channel the probes listen on, and what a client's UNLISTEN becomes. */
const PROBE_CHANNEL = 'pglite_oxide_probe';
const NOBODYS_CHANNEL = 'pglite_oxide_no_listener';
/** ListenStmt, UnlistenStmt and NotifyStmt: { NodeTag type; char *conditionname; char *payload }. */
const CONDITION_NAME = 4;
const PAYLOAD = 8;
/** TransactionStmt: { NodeTag type; TransactionStmtKind kind; List *options; char *savepoint_name }. */
const TRANSACTION_KIND = 4;
const SAVEPOINT_NAME = 12;
/** TransactionStmtKind: BEGIN, START TRANSACTION, SAVEPOINT. */
const BEGIN_KINDS = new Set([0, 1]);
const SAVEPOINT_KIND = 4;
/** The statements the utility hook finds for this module: LISTEN, UNLISTEN, NOTIFY, SAVEPOINT. */
export const CHANNEL_PROBES: UtilityProbe[] = [
  { sql: `LISTEN ${PROBE_CHANNEL}`, name: PROBE_CHANNEL, nameOffset: CONDITION_NAME },
  { sql: `UNLISTEN ${PROBE_CHANNEL}`, name: PROBE_CHANNEL, nameOffset: CONDITION_NAME },
  { sql: `NOTIFY ${PROBE_CHANNEL}`, name: PROBE_CHANNEL, nameOffset: CONDITION_NAME },
  { sql: `BEGIN; SAVEPOINT ${PROBE_CHANNEL}; ROLLBACK`, name: PROBE_CHANNEL, nameOffset: SAVEPOINT_NAME },
];
/** XactEvent: commit, parallel commit; abort, parallel abort, prepare. SubXactEvent: commit, abort. */
const COMMIT_EVENTS = new Set([0, 1]);
const ABORT_EVENTS = new Set([2, 3, 4]);
const SUBXACT_COMMIT = 1;
const SUBXACT_ABORT = 2;
/** The subtransaction id of a transaction's top level. */
const TOP_LEVEL = 1;

/** A LISTEN, UNLISTEN or notification of a client, counted when its transaction commits. */
type PendingChange =
  | { pid: number; subtransaction: number; kind: 'listen' | 'unlisten'; channel: string | null }
  | { pid: number; subtransaction: number; kind: 'notify'; channel: string; payload: string };

/** Engines whose channels are kept per client. */
const installed = new WeakMap<PGlite, ClientChannels>();

/** Whether `engine` keeps LISTEN channels per client (see installClientChannels). */
export function keepsClientChannels(engine: PGlite): boolean {
  return installed.has(engine);
}

/**
 * `output` of a call, after the notifications it released into a test's transaction as
 * NotificationResponse messages, each with its client's pid (see the top of this file): at the
 * start, where the proxy finds them at once.
 */
export function withReleasedNotifications(engine: PGlite, output: Uint8Array): Uint8Array {
  const channels = installed.get(engine);
  return channels?.hasReleased() ? channels.addReleased(output) : output;
}

export class ClientChannels {
  /** Each client's channels, in the order it listened on them. */
  private readonly channels = new Map<number, string[]>();
  private pending: PendingChange[] = [];
  /** Notifications released into a test's transaction, not yet added to a call's output. */
  private released: Array<Extract<PendingChange, { kind: 'notify' }>> = [];
  /** The transaction block open now was begun by the engine's own login: a test's transaction. */
  engineBegan = false;
  /** The channels as they were before a savepoint was released into a test's transaction. */
  private beforeTest: Map<number, string[]> | null = null;

  constructor(private readonly clients: ClientTableHolder) {}

  /** The channels client `pid` listens on. */
  of(pid: number): string[] {
    this.forgetLeftClients();
    return this.channels.get(pid) ?? [];
  }

  ran(change: PendingChange): void {
    this.pending.push(change);
  }

  rolledBackTo(subtransaction: number): void {
    if (this.pending.length > 0)
      this.pending = this.pending.filter((change) => change.subtransaction < subtransaction);
  }

  /**
   * A savepoint was released: its changes belong to its parent now, and count as committed when
   * that is the top level of a test's transaction.
   */
  savepointReleased(subtransaction: number, parent: number): void {
    if (this.pending.length === 0) return;
    const inner = (change: PendingChange) => change.subtransaction >= subtransaction;
    if (parent === TOP_LEVEL && this.engineBegan) {
      this.beforeTest ??= new Map([...this.channels].map(([pid, own]) => [pid, [...own]]));
      this.committed(this.pending.filter(inner));
      this.pending = this.pending.filter((change) => !inner(change));
      return;
    }
    for (const change of this.pending) if (inner(change)) change.subtransaction = parent;
  }

  transactionEnded(committed: boolean): void {
    this.engineBegan = false;
    // Every transaction ends here, a client's SELECT too: most have nothing to do.
    if (this.pending.length === 0 && this.beforeTest === null) return;
    const changes = this.pending;
    this.pending = [];
    const beforeTest = this.beforeTest;
    this.beforeTest = null;
    // A test's transaction rolled back takes its clients' LISTEN and UNLISTEN with it.
    if (!committed && beforeTest) this.restore(beforeTest);
    // At a real commit the engine sends the notifications itself.
    if (committed) this.committed(changes.filter((change) => change.kind !== 'notify'));
  }

  hasReleased(): boolean {
    return this.released.length > 0;
  }

  /** The released notifications, then `output`; each once, as PostgreSQL folds duplicates. */
  addReleased(output: Uint8Array): Uint8Array {
    const seen = new Set<string>();
    const messages: Uint8Array[] = [];
    for (const { pid, channel, payload } of this.released) {
      const key = `${pid}\0${channel}\0${payload}`;
      if (seen.has(key)) continue;
      seen.add(key);
      messages.push(notificationResponse(pid, channel, payload));
    }
    this.released = [];
    messages.push(output);
    return Buffer.concat(messages);
  }

  private committed(changes: readonly PendingChange[]): void {
    const changed = new Set<number>();
    for (const change of changes) {
      if (change.kind === 'notify') {
        this.released.push(change);
        continue;
      }
      const { pid, kind, channel } = change;
      const own = this.channels.get(pid) ?? [];
      if (kind === 'listen' && channel !== null && !own.includes(channel)) own.push(channel);
      const kept = kind === 'listen' ? own : channel === null ? [] : own.filter((name) => name !== channel);
      this.channels.set(pid, kept);
      changed.add(pid);
    }
    for (const pid of changed) this.clients.table?.channelsChanged(pid);
  }

  private restore(channels: Map<number, string[]>): void {
    const pids = new Set([...this.channels.keys(), ...channels.keys()]);
    this.channels.clear();
    for (const [pid, own] of channels) this.channels.set(pid, own);
    for (const pid of pids) this.clients.table?.channelsChanged(pid);
  }

  private forgetLeftClients(): void {
    const table = this.clients.table;
    if (!table) return;
    for (const pid of this.channels.keys()) if (!table.find(pid)) this.channels.delete(pid);
  }
}

/**
 * Keeps LISTEN channels and notifications per client in `engine` (see the top of this file);
 * false when it cannot be installed (the engine then serves no role but its superusers, see
 * enforcesLoginRoles). `probed`: what the utility hook found of CHANNEL_PROBES.
 */
export function installClientChannels(
  engine: PGlite,
  holder: ClientTableHolder,
  callerPid: () => number,
  functionTable: WebAssembly.Table | null,
  utility: UtilityHook | null,
  probed: ReadonlyArray<{ tag: number; node: Uint8Array }>,
): boolean {
  const candidate = (engine as unknown as { mod?: Partial<ChannelModule> }).mod;
  if (!candidate || !functionTable || !utility) return false;
  if (ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  const module = candidate as ChannelModule;
  const [listen, unlisten, notify, transaction] = probed;
  if (!listen || !unlisten || !notify || !transaction) return false;
  if (new Set([listen.tag, unlisten.tag, notify.tag, transaction.tag]).size !== 4) return false;
  if (Buffer.from(transaction.node).readUInt32LE(TRANSACTION_KIND) !== SAVEPOINT_KIND) return false;
  const channels = new ClientChannels(holder);
  const nobodys = Buffer.from(`${NOBODYS_CHANNEL}\0`, 'utf8');
  const nobodysName = module._malloc(nobodys.length);
  module.HEAPU8.set(nobodys, nobodysName);
  const subtransaction = () => module._GetCurrentSubTransactionId();
  const ran = (kind: 'listen' | 'unlisten') => (node: number, run: () => void) => {
    const pid = callerPid();
    if (pid === 0) return run();
    channels.ran({
      pid,
      subtransaction: subtransaction(),
      kind,
      channel: utility.stringAt(node, CONDITION_NAME),
    });
    if (kind === 'listen') return run();
    // PostgreSQL checks the UNLISTEN as it is, but of nobody's channel: the engine keeps the others'.
    const nameSlot = (node + CONDITION_NAME) >> 2;
    const name = module.HEAPU32[nameSlot]!;
    module.HEAPU32[nameSlot] = nobodysName;
    try {
      run();
    } finally {
      module.HEAPU32[nameSlot] = name;
    }
  };
  // A notification is kept once PostgreSQL took it (it checks the channel and payload first).
  const notified = (pid: number, channel: string, payload: string) =>
    channels.ran({ pid, subtransaction: subtransaction(), kind: 'notify', channel, payload });
  utility.on(listen.tag, ran('listen'));
  utility.on(unlisten.tag, ran('unlisten'));
  utility.on(notify.tag, (node, run) => {
    run();
    const pid = callerPid();
    if (pid !== 0)
      notified(pid, utility.stringAt(node, CONDITION_NAME) ?? '', utility.stringAt(node, PAYLOAD) ?? '');
  });
  utility.on(transaction.tag, (node, run) => {
    if (callerPid() === 0 && BEGIN_KINDS.has(module.HEAPU32[(node + TRANSACTION_KIND) >> 2]!))
      channels.engineBegan = true;
    run();
  });
  const listing = wrapBuiltin(module, PG_LISTENING_CHANNELS, (original) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo) => {
      const pid = callerPid();
      if (!holder.table || pid === 0) return postgres(fcinfo);
      return returnRows(
        module,
        fcinfo,
        channels.of(pid).map((channel) => [channel]),
        'scalar',
      );
    };
  });
  const notifying = wrapBuiltin(module, PG_NOTIFY, (original) => {
    const postgres = functionTable.get(original) as (fcinfo: number) => number;
    return (fcinfo) => {
      const result = postgres(fcinfo);
      const pid = callerPid();
      if (pid !== 0)
        notified(pid, textArgument(module, fcinfo, 0) ?? '', textArgument(module, fcinfo, 1) ?? '');
      return result;
    };
  });
  if (!listing || !notifying) return false;
  module._RegisterXactCallback(
    module.addFunction((event: number) => {
      if (COMMIT_EVENTS.has(event)) channels.transactionEnded(true);
      else if (ABORT_EVENTS.has(event)) channels.transactionEnded(false);
    }, 'vii'),
    0,
  );
  module._RegisterSubXactCallback(
    module.addFunction((event: number, subtransactionId: number, parent: number) => {
      if (event === SUBXACT_ABORT) channels.rolledBackTo(subtransactionId);
      else if (event === SUBXACT_COMMIT) channels.savepointReleased(subtransactionId, parent);
    }, 'viiii'),
    0,
  );
  installed.set(engine, channels);
  return true;
}
