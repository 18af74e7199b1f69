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

interface ChannelModule extends SetReturningModule {
  HEAP16: Int16Array;
  addFunction(fn: (...args: number[]) => unknown, signature: string): number;
  UTF8ToString(pointer: number): string;
  /** Address of ProcessUtility_hook. */
  _ProcessUtility_hook: number;
  _standard_ProcessUtility(...args: number[]): void;
  _RegisterXactCallback(callback: number, arg: number): void;
  _RegisterSubXactCallback(callback: number, arg: number): void;
  _GetCurrentSubTransactionId(): number;
}

const ENTRY_POINTS = [
  ...SET_RETURNING_ENTRY_POINTS,
  'addFunction',
  'UTF8ToString',
  '_standard_ProcessUtility',
  '_RegisterXactCallback',
  '_RegisterSubXactCallback',
  '_GetCurrentSubTransactionId',
] as const;

const PG_LISTENING_CHANNELS: BuiltinFunction = { oid: 3035, name: 'pg_listening_channels', nargs: 0 };
/** The channel the probes at install listen on, and what a client's UNLISTEN becomes. */
const PROBE_CHANNEL = 'pglite_oxide_probe';
const NOBODYS_CHANNEL = 'pglite_oxide_no_listener';
/** ListenStmt and UnlistenStmt: { NodeTag type; char *conditionname }. */
const CONDITION_NAME = 4;
/** How far into a PlannedStmt its utilityStmt is looked for. */
const PLANNED_STMT_WORDS = 48;
/** XactEvent: commit, parallel commit; abort, parallel abort, prepare. SubXactEvent: abort. */
const COMMIT_EVENTS = new Set([0, 1]);
const ABORT_EVENTS = new Set([2, 3, 4]);
const SUBXACT_ABORT = 2;

/** Where a LISTEN or UNLISTEN is in the PlannedStmt the hook gets, as found at install. */
interface UtilityLayout {
  /** Byte offset of utilityStmt in a PlannedStmt. */
  utility: number;
  listenTag: number;
  unlistenTag: number;
}

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
 */
export async function installClientChannels(
  engine: PGlite,
  holder: ClientTableHolder,
  callerPid: () => number,
  functionTable: WebAssembly.Table | null,
): Promise<boolean> {
  const candidate = (engine as unknown as { mod?: Partial<ChannelModule> }).mod;
  if (!candidate || !functionTable || typeof candidate._ProcessUtility_hook !== 'number') return false;
  if (ENTRY_POINTS.some((name) => typeof candidate[name] !== 'function')) return false;
  const module = candidate as ChannelModule;
  const hookSlot = module._ProcessUtility_hook >> 2;
  const before = module.HEAPU32[hookSlot]!;
  const previous =
    before === 0
      ? module._standard_ProcessUtility.bind(module)
      : (functionTable.get(before) as (...args: number[]) => void);
  const layout = await findUtilityLayout(engine, module, hookSlot, before, previous);
  if (!layout) return false;
  const channels = new ClientChannels(holder);
  const nobodys = Buffer.from(`${NOBODYS_CHANNEL}\0`, 'utf8');
  const nobodysName = module._malloc(nobodys.length);
  module.HEAPU8.set(nobodys, nobodysName);
  const hook = (...args: number[]) => {
    const pid = callerPid();
    const statement = pid === 0 ? 0 : module.HEAPU32[(args[0]! + layout.utility) >> 2]!;
    const tag = statement === 0 ? -1 : module.HEAPU32[statement >> 2];
    if (tag !== layout.listenTag && tag !== layout.unlistenTag) return previous(...args);
    const nameSlot = (statement + CONDITION_NAME) >> 2;
    const name = module.HEAPU32[nameSlot]!;
    const listen = tag === layout.listenTag;
    const subtransaction = module._GetCurrentSubTransactionId();
    channels.ran({ pid, subtransaction, listen, channel: name === 0 ? null : module.UTF8ToString(name) });
    if (listen) return previous(...args);
    // PostgreSQL checks the UNLISTEN as it is, but of nobody's channel: the engine keeps the others'.
    module.HEAPU32[nameSlot] = nobodysName;
    try {
      return previous(...args);
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
  module.HEAPU32[hookSlot] = module.addFunction(hook, 'viiiiiiii');
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

/**
 * Finds where the hook's PlannedStmt keeps its utility statement, and the node tags of LISTEN and
 * UNLISTEN, by running both on a probe channel with a hook that looks for the channel's name.
 */
async function findUtilityLayout(
  engine: PGlite,
  module: ChannelModule,
  hookSlot: number,
  before: number,
  previous: (...args: number[]) => void,
): Promise<UtilityLayout | null> {
  const seen: Array<{ utility: number; tag: number }> = [];
  const probeName = Buffer.from(`${PROBE_CHANNEL}\0`, 'utf8');
  const namesProbe = (pointer: number) => {
    const bytes = module.HEAPU8;
    return (
      pointer !== 0 &&
      pointer + probeName.length <= bytes.length &&
      probeName.equals(bytes.subarray(pointer, pointer + probeName.length))
    );
  };
  const probe = (...args: number[]) => {
    const words = module.HEAPU32;
    for (let word = 0; word < PLANNED_STMT_WORDS; word++) {
      const node = words[(args[0]! >> 2) + word]!;
      if (node === 0 || node % 4 !== 0 || node + 8 > module.HEAPU8.length) continue;
      if (namesProbe(words[(node + CONDITION_NAME) >> 2]!)) {
        seen.push({ utility: word * 4, tag: words[node >> 2]! });
        break;
      }
    }
    previous(...args);
  };
  module.HEAPU32[hookSlot] = module.addFunction(probe, 'viiiiiiii');
  try {
    await engine.exec(`LISTEN ${PROBE_CHANNEL}`);
    await engine.exec(`UNLISTEN ${PROBE_CHANNEL}`);
  } finally {
    module.HEAPU32[hookSlot] = before;
  }
  const [listen, unlisten] = seen;
  if (seen.length !== 2 || listen!.utility !== unlisten!.utility || listen!.tag === unlisten!.tag)
    return null;
  return { utility: listen!.utility, listenTag: listen!.tag, unlistenTag: unlisten!.tag };
}
