import { isIP } from 'node:net';
import { InvalidInputError } from '../errors.js';
import type { PglitePaths } from '../install/paths.js';
import type { InteractiveRuntime, RuntimeOptions } from '../runtime/interactive-runtime.js';
import type { AuthMethod } from './login/auth.js';

export interface ProxyOptions {
  /** Listen on TCP. Defaults to true unless `socketDir` is given. */
  tcp?: boolean;
  /** TCP address; 127.0.0.1 unless asked. Any non-loopback address requires `password`. */
  host?: string;
  /** TCP port (0 = a free one, the default); with only a Unix socket, the number in its name (5432). */
  port?: number;
  /** Directory of a Unix socket `<dir>/.s.PGSQL.<port>`; created 0700 when missing, refused if world-writable. */
  socketDir?: string;
  /** The engine to serve. Default: the process-wide default runtime (see defaultRuntime). */
  runtime?: InteractiveRuntime;
  /** Serve a new engine started on these paths instead (the proxy owns it and closes it). */
  paths?: PglitePaths;
  /** Options for the engine started on `paths`. */
  runtimeOptions?: RuntimeOptions;
  /** Close the served runtime when the proxy closes. Default: only when the proxy started it. */
  closeRuntime?: boolean;
  /** Require this password (for the runtime's user). Without it, loopback clients are trusted. */
  password?: string;
  /** How the password is checked. Default 'scram-sha-256'. */
  authMethod?: AuthMethod;
  /**
   * How long a client waits for the engine while another client holds it (unless the waiter's own
   * lock_timeout or statement_timeout is set), before 55P03 naming the holder. Default 3 s: under
   * the 5 s test timeouts of Vitest and Jest, so a waiting test fails saying why.
   */
  queueTimeoutMs?: number;
  /**
   * How long a client may sit idle in a transaction that holds the engine while another client
   * waits for it, before 25P03 rolls it back and disconnects it (nobody waiting: it may stay, as on
   * a server). Default 10 s.
   */
  idleInTransactionTimeoutMs?: number;
  /** How long a new connection has to finish startup and authentication. Default 5 s. */
  startupTimeoutMs?: number;
  /**
   * Connections still in startup or authentication, at most. They do not take the places of
   * logged-in clients; past this many, the one waiting longest is closed. Default 32.
   */
  maxStartupConnections?: number;
  /** How long a wrong password waits before it is answered with 28P01. Default 500 ms. */
  authFailureDelayMs?: number;
  /**
   * With an engine in its own thread (serve, run): how long a statement may run on after a
   * CancelRequest before its engine is replaced. Default 5 s.
   */
  cancelGraceMs?: number;
  /**
   * With an engine in its own thread on a data directory (serve --data): when the last client
   * leaves and the engine's memory is above this many MiB, the engine restarts to give it back.
   * Default 512.
   */
  engineMemoryLimitMiB?: number;
  /** The largest frontend message accepted (Query, Bind, CopyData, ...). Default 256 MiB. */
  maxMessageBytes?: number;
  /** The most COPY FROM STDIN data accepted in one COPY. Default 1 GiB. */
  maxCopyInBytes?: number;
  /** Logged-in clients above this many are refused with 53300. Default 100. */
  maxConnections?: number;
  /**
   * Serve clients for isolation 'transaction': between `beginTest()` and `endTest()` of the handle,
   * everything runs inside one outer transaction, clients' own transactions become savepoints in
   * it, and each statement outside them gets a savepoint of its own. Default false.
   */
  testTransactions?: boolean;
  /** Where the proxy reports trouble it handled (a client's protocol error, a failed cleanup). */
  onWarning?: (message: string) => void;
}

/** The limits on waiting for the engine and on holding it idle (see ProxyOptions). */
export type ClientTimeouts = Pick<ProxyOptions, 'queueTimeoutMs' | 'idleInTransactionTimeoutMs'>;

/** Their defaults, the same in startProxy, serve, run and the presets. */
export const DEFAULT_CLIENT_TIMEOUTS = { queueTimeoutMs: 3_000, idleInTransactionTimeoutMs: 10_000 } as const;

export interface ResolvedLimits {
  queueTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
  startupTimeoutMs: number;
  maxStartupConnections: number;
  authFailureDelayMs: number;
  cancelGraceMs: number;
  engineMemoryLimitMiB: number;
  maxMessageBytes: number;
  maxCopyInBytes: number;
  maxConnections: number;
}

export function resolveLimits(options: ProxyOptions): ResolvedLimits {
  const limits: ResolvedLimits = {
    queueTimeoutMs: options.queueTimeoutMs ?? DEFAULT_CLIENT_TIMEOUTS.queueTimeoutMs,
    idleInTransactionTimeoutMs:
      options.idleInTransactionTimeoutMs ?? DEFAULT_CLIENT_TIMEOUTS.idleInTransactionTimeoutMs,
    startupTimeoutMs: options.startupTimeoutMs ?? 5_000,
    maxStartupConnections: options.maxStartupConnections ?? 32,
    authFailureDelayMs: options.authFailureDelayMs ?? 500,
    cancelGraceMs: options.cancelGraceMs ?? 5_000,
    engineMemoryLimitMiB: options.engineMemoryLimitMiB ?? 512,
    maxMessageBytes: options.maxMessageBytes ?? 256 * 1024 * 1024,
    maxCopyInBytes: options.maxCopyInBytes ?? 1024 * 1024 * 1024,
    maxConnections: options.maxConnections ?? 100,
  };
  for (const [name, value] of Object.entries(limits)) {
    const minimum = name === 'authFailureDelayMs' ? 0 : Number.MIN_VALUE;
    if (typeof value !== 'number' || Number.isNaN(value) || value < minimum) {
      throw new InvalidInputError(
        `startProxy: ${name} must be a ${minimum === 0 ? 'non-negative' : 'positive'} number, got ${value}.`,
      );
    }
  }
  return limits;
}

/** Checks the listening choices; an open address without a password is refused. */
export function resolveListen(options: ProxyOptions): {
  tcp: boolean;
  host: string;
  port: number | undefined;
} {
  const tcp = options.tcp ?? options.socketDir === undefined;
  const host = options.host ?? '127.0.0.1';
  if (!tcp && options.socketDir === undefined) {
    throw new InvalidInputError('startProxy: give tcp: true, a socketDir, or both.');
  }
  if (tcp && isIP(host) === 0 && host !== 'localhost') {
    throw new InvalidInputError(`startProxy: host must be an IP address, got ${host}.`);
  }
  if (tcp && !isLoopback(host) && !options.password) {
    throw new InvalidInputError(
      `startProxy: listening on ${host} lets other machines in; a password is required (password: '...').`,
    );
  }
  const port = options.port;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new InvalidInputError(`startProxy: port must be an integer from 0 to 65535, got ${port}.`);
  }
  if (options.authMethod && options.authMethod !== 'scram-sha-256' && options.authMethod !== 'md5') {
    throw new InvalidInputError(`startProxy: authMethod must be 'scram-sha-256' or 'md5'.`);
  }
  return { tcp, host, port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
