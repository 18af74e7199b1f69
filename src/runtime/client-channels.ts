// LISTEN channels per client. On a server each backend listens on its own channels:
// pg_listening_channels() lists them, and an UNLISTEN (also UNLISTEN * and one in a DO block or a
// function) ends only the caller's. The engine has one session for all the proxy's clients, so
// here it listens on every channel any client ever listened on, and the clients' own channels are
// kept by pid, from what PostgreSQL itself runs: a ProcessUtility hook sees each LISTEN and
// UNLISTEN by any path, and they count once the transaction commits (in a savepoint rolled back,
// they do not). A client's UNLISTEN reaches the engine as one of a channel nobody listens on, so
// PostgreSQL checks it as it would, and the engine keeps delivering other clients' notifications.
// The proxy routes each notification to the clients of its channel: the client table tells it
// when a client's channels changed, and it reads them with pg_listening_channels(), which answers
// the caller's own. The engine's own calls, and an engine no proxy serves, are PostgreSQL's
// alone. Private engine parts: tests/engine-internals.test.ts watches them.
import type { PGlite } from '@electric-sql/pglite';
import { type BuiltinFunction, wrapBuiltin } from './builtin-functions.js';
import type { ClientTableHolder } from './client-table.js';
import { returnRows, SET_RETURNING_ENTRY_POINTS, type SetReturningModule } from './set-returning.js';
import type { UtilityHook, UtilityProbe } from './utility-hook.js';

interface ChannelModule extends SetReturningModule {
  HEAP16: Int16Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  _RegisterXactCallback(callback: number, arg: number): void;
  _RegisterSubXactCallback(callback: number, arg: number): void;
  _GetCurrentSubTransactionId(): number;
}

const ENTRY_POINTS = [
  ...SET_RETURNING_ENTRY_POINTS,
  'addFunction',
  '_RegisterXactCallback',
  '_RegisterSubXactCallback',
  '_GetCurrentSubTransactionId',
] as const;

const PG_LISTENING_CHANNELS: BuiltinFunction = { oid: 3035, name: 'pg_listening_channels', nargs: 0 };
/** The channel the probes listen on, and what a client's UNLISTEN becomes. */
const PROBE_CHANNEL = 'pglite_oxide_probe';
const NOBODYS_CHANNEL = 'pglite_oxide_no_listener';
/** ListenStmt and UnlistenStmt: { NodeTag type; char *conditionname }. */
const CONDITION_NAME = 4;
/** The statements the utility hook finds for this module: LISTEN, then UNLISTEN. */
export const CHANNEL_PROBES: UtilityProbe[] = [
  { sql: `LISTEN ${PROBE_CHANNEL}`, name: PROBE_CHANNEL, nameOffset: CONDITION_NAME },
  { sql: `UNLISTEN ${PROBE_CHANNEL}`, name: PROBE_CHANNEL, nameOffset: CONDITION_NAME },
];
/** XactEvent: commit, parallel commit; abort, parallel abort, prepare. SubXactEvent: abort. */
const COMMIT_EVENTS = new Set([0, 1]);
const ABORT_EVENTS = new Set([2, 3, 4]);
const SUBXACT_ABORT = 2;

/** A LISTEN or UNLISTEN run, counted when its transaction commits. */
interface PendingChange {
  pid: number;
  /** The subtransaction it ran in: a rollback to a savepoint drops those at or after it. */
  subtransaction: number;
  listen: boolean;
  /** The channel; null for UNLISTEN *. */
  channel: string | null;
}

/** Engines whose channels are kept per client. */
const installed = new WeakSet<PGlite>();

/** Whether `engine` keeps LISTEN channels per client (see installClientChannels). */
export function keepsClientChannels(engine: PGlite): boolean {
  return installed.has(engine);
}

export class ClientChannels {
  /** Each client's channels, in the order it listened on them. */
  private readonly channels = new Map<number, string[]>();
  private pending: PendingChange[] = [];

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
    this.pending = this.pending.filter((change) => change.subtransaction < subtransaction);
  }

  transactionEnded(committed: boolean): void {
    const changes = this.pending;
    this.pending = [];
    if (!committed || changes.length === 0) return;
    const changed = new Set<number>();
    for (const { pid, listen, channel } of changes) {
      const own = this.channels.get(pid) ?? [];
      if (listen && channel !== null && !own.includes(channel)) own.push(channel);
      const kept = listen ? own : channel === null ? [] : own.filter((name) => name !== channel);
      this.channels.set(pid, kept);
      changed.add(pid);
    }
    for (const pid of changed) this.clients.table?.channelsChanged(pid);
  }

  private forgetLeftClients(): void {
    const table = this.clients.table;
    if (!table) return;
    for (const pid of this.channels.keys()) if (!table.find(pid)) this.channels.delete(pid);
  }
}

/**
 * Keeps LISTEN channels per client in `engine` (see the top of this file); false when it cannot
 * be installed (the engine then serves no role but its superusers, see enforcesLoginRoles).
 * `probed`: what the utility hook found of CHANNEL_PROBES.
 */
export function installClientChannels(
  engine: PGlite,
  holder: ClientTableHolder,
  callerPid: () => number,
  functionTable: WebAssembly.Table | null,
  utility: UtilityHook | null,
  probed: ReadonlyArray<{ tag: number }>,
): boolean {
  const candidate = (engine as unknown as { mod?: Partial<ChannelModule> }).mod;
  if (!candidate || !functionTable || !utility) return false;
  if (ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  const module = candidate as ChannelModule;
  const [listenTag, unlistenTag] = probed.map((probe) => probe.tag);
  if (listenTag === undefined || unlistenTag === undefined || listenTag === unlistenTag) return false;
  const channels = new ClientChannels(holder);
  const nobodys = Buffer.from(`${NOBODYS_CHANNEL}\0`, 'utf8');
  const nobodysName = module._malloc(nobodys.length);
  module.HEAPU8.set(nobodys, nobodysName);
  const ran = (listen: boolean) => (node: number, run: () => void) => {
    const pid = callerPid();
    if (pid === 0) return run();
    const subtransaction = module._GetCurrentSubTransactionId();
    channels.ran({ pid, subtransaction, listen, channel: utility.stringAt(node, CONDITION_NAME) });
    if (listen) return run();
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
  if (!listing) return false;
  utility.on(listenTag, ran(true));
  utility.on(unlistenTag, ran(false));
  module._RegisterXactCallback(
    module.addFunction((event: number) => {
      if (COMMIT_EVENTS.has(event)) channels.transactionEnded(true);
      else if (ABORT_EVENTS.has(event)) channels.transactionEnded(false);
    }, 'vii'),
    0,
  );
  module._RegisterSubXactCallback(
    module.addFunction((event: number, subtransaction: number) => {
      if (event === SUBXACT_ABORT) channels.rolledBackTo(subtransaction);
    }, 'viiii'),
    0,
  );
  installed.add(engine);
  return true;
}
