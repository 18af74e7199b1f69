import type { PasswordAuthenticator } from './auth.js';
import type { ClientSession } from './client-session.js';
import type { EngineGate } from './engine-gate.js';
import type { EngineScheduler } from './engine-scheduler.js';
import type { NotificationHub } from './notifications.js';
import type { ResolvedLimits } from './options.js';

/** What a client session needs from the proxy that owns it. */
export interface SessionHost {
  readonly limits: ResolvedLimits;
  readonly gate: EngineGate;
  readonly scheduler: EngineScheduler<ClientSession>;
  /**
   * Isolation 'transaction': which client has a transaction of its own open (a savepoint in the
   * test's transaction). One at a time; other clients' statements run meanwhile, inside it.
   */
  readonly transactionSlot: EngineScheduler<ClientSession>;
  readonly hub: NotificationHub;
  /** ParameterStatus values sent to new clients; kept current from the engine's reports. */
  readonly settings: Map<string, string>;
  readonly user: string;
  readonly database: string;
  readonly authenticator: PasswordAuthenticator | null;
  /** The proxy serves isolation 'transaction' (see ProxyOptions.testTransactions). */
  readonly testTransactions: boolean;
  /** A test's outer transaction is open right now. */
  readonly testTransactionOpen: boolean;
  /**
   * Clients that disconnected inside a transaction of their own during the current test,
   * described: the test's end names them with those still inside one.
   */
  readonly leftInsideTransaction: string[];
  cancel(processId: number, secretKey: number): void;
  /** A call into the engine failed: the engine session, and every client's state in it, is gone. */
  engineFailed(error: unknown, by: ClientSession): void;
  /**
   * The settings the engine has from the proxy's switches, and the client they are for; null when
   * not known (after a test's transaction ended, or a new engine).
   */
  sessionApplied: Map<string, string> | null;
  sessionOwner: ClientSession | null;
  /** Every setting name the connected clients have a value of their own for. */
  settingNames(): Iterable<string>;
  /** Whether one more client may log in (maxConnections). */
  roomForClient(): boolean;
  /** Clients past startup, other than `except`. */
  otherClients(except: ClientSession): ClientSession[];
  sessionLeft(session: ClientSession): void;
  warn(message: string): void;
}
