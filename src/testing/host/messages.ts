// Everything the engine host's parts say to each other, typed once for both sides.
import type { ResetReport } from '../../runtime/memory-engine.js';

/** What a test file needs to use a hosted database. */
export interface HostedDatabaseInfo {
  connectionString: string;
  /** DATABASE_URL and the libpq PG* variables. */
  env: Record<string, string>;
  /** Address of the database's own control socket (isolation calls, raw wire access). */
  control: string;
}

/** Between the host and the worker thread running one hosted database. */
export type WorkerToMain =
  | { type: 'ready'; info: HostedDatabaseInfo }
  | { type: 'failed'; reason: string }
  | { type: 'recycled'; ok: boolean; reason?: string };

export type MainToWorker = { type: 'recycle' } | { type: 'close' };

/** One call on a control socket: what is sent, what comes back. */
export interface ControlCall<Args, Result> {
  args: Args;
  result: Result;
}

type NoArgs = Record<string, never>;

export interface LeaseReply {
  leaseId: number;
  info: HostedDatabaseInfo;
}

/** What became of a statement a test left running: none, stopped, or its database replaced. */
export type RescueOutcome = 'idle' | 'cancelled' | 'replaced';

/** The engine host's control socket: test files lease and give back databases. */
export type HostCalls = {
  lease: ControlCall<NoArgs, LeaseReply>;
  release: ControlCall<{ leaseId: number }, void>;
  /** Stops what runs on a leased database, replacing the database when it does not stop. */
  cancel: ControlCall<{ leaseId: number }, RescueOutcome>;
};

/** A hosted database's control socket: the test file isolates its tests. */
export type DatabaseCalls = {
  beginTest: ControlCall<NoArgs, void>;
  /** Resolves with the clients the test left inside a transaction, described. */
  endTest: ControlCall<{ outcome: 'rollback' | 'commit' }, string[]>;
  reset: ControlCall<NoArgs, ResetReport>;
  /** A SQL string or base64 frontend messages; answers base64 backend messages. */
  exec: ControlCall<{ sql: string } | { bytes: string }, string>;
  /** Writes the database to `dir`; answers the root written. */
  keep: ControlCall<{ dir: string }, string>;
  /** The clients still connected after `graceMs`, described; `label` names the file to them. */
  clientsLeft: ControlCall<{ graceMs: number; label: string }, string[]>;
};
