import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { serialize } from 'pg-protocol';
import { EngineReplacedError, InvalidInputError, ProxyStartError } from '../errors.js';
import { scanBackend } from '../protocol/backend-scanner.js';
import { defaultRuntime } from '../runtime/default-runtime.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import type { ThreadedEngine } from '../runtime/threaded-engine.js';
import { PasswordAuthenticator } from './auth.js';
import { ClientSession } from './client-session.js';
import { type EngineGate, RuntimeGate, reportedSettings } from './engine-gate.js';
import { EngineScheduler, EngineWaitError } from './engine-scheduler.js';
import { NotificationHub } from './notifications.js';
import { type ProxyOptions, type ResolvedLimits, resolveLimits, resolveListen } from './options.js';
import type { SessionHost } from './session-host.js';

/** A running proxy, in the style of a started test container. */
export interface ProxyHandle {
  /** TCP address, or the socket directory when only a Unix socket is served. */
  readonly host: string;
  /** TCP port, or the number in the Unix socket's name. */
  readonly port: number;
  /** A URI for libpq, node-postgres and postgres.js. */
  readonly connectionString: string;
  /** `<socketDir>/.s.PGSQL.<port>` when a Unix socket is served. */
  readonly socketPath?: string;
  readonly socketDir?: string;
  readonly user: string;
  readonly database: string;
  readonly runtime: InteractiveRuntime;
  /** Connected clients right now. */
  readonly clientCount: number;
  /** DATABASE_URL and the libpq PG* variables pointing at this proxy. */
  readonly env: Record<string, string>;
  /** Waits up to `timeoutMs` for connected clients to leave; false when some stayed. */
  clientsGone(timeoutMs: number): Promise<boolean>;
  /** The clients connected now, described (who, in which state, their last statement). */
  clients(): string[];
  /**
   * With `testTransactions`: opens a test's outer transaction, first ending the previous test's
   * (rolled back) if one is open. Clients' transaction states are forgotten with it.
   */
  beginTest(): Promise<void>;
  /**
   * With `testTransactions`: ends the test's outer transaction, rolled back unless told to commit.
   * Resolves with the clients that were still inside a transaction of their own, described.
   */
  endTest(outcome?: 'rollback' | 'commit'): Promise<string[]>;
  /**
   * Stops accepting, ends every client with 57P01, then closes the engine if the proxy owns it.
   * `reason` replaces PostgreSQL's "due to administrator command" in what the clients are told.
   */
  close(reason?: string): Promise<void>;
}

const SHUTDOWN_MESSAGE = 'terminating connection due to administrator command';
/** Stands for the test toolkit in the engine's queue while it opens or ends a test. */
const TEST_CONTROLLER = Symbol('test controller');
/** How long test control waits for a client's unit of work before taking the engine anyway. */
const PINNED_CLIENT_GRACE_MS = 1_000;

/**
 * Serves one engine session to many PostgreSQL clients over TCP and/or a Unix socket.
 *
 * ```ts
 * const proxy = await startProxy({ tcp: true, port: 0 });
 * const pool = new pg.Pool({ connectionString: proxy.connectionString });
 * ```
 */
export async function startProxy(options: ProxyOptions = {}): Promise<ProxyHandle> {
  const listen = resolveListen(options);
  const limits = resolveLimits(options);
  let runtime: InteractiveRuntime;
  let ownsRuntime: boolean;
  if (options.runtime) {
    runtime = options.runtime;
    ownsRuntime = options.closeRuntime ?? false;
  } else if (options.paths) {
    runtime = await InteractiveRuntime.start(options.paths, options.runtimeOptions);
    ownsRuntime = options.closeRuntime ?? true;
  } else {
    runtime = await defaultRuntime();
    ownsRuntime = options.closeRuntime ?? false;
  }
  const served: ServedEngine = {
    gate: new RuntimeGate(runtime),
    env: runtime.env,
    close: ownsRuntime ? () => runtime.close() : null,
  };
  const handle = await serve(served, listen, limits, options);
  return { ...handle, runtime };
}

/** A proxy over an engine in a thread of its own, such as `serve` and `run` start. */
export type ThreadedProxyHandle = Omit<ProxyHandle, 'runtime'>;

/**
 * Serves an engine that runs in a thread of its own: a long statement holds only the clients that
 * wait for the engine, CancelRequest and statement_timeout stop it, and closing the proxy stops
 * it (and closes the engine) within a second.
 */
export function startThreadedProxy(
  engine: ThreadedEngine,
  options: Omit<ProxyOptions, 'runtime' | 'paths' | 'runtimeOptions' | 'closeRuntime'> = {},
): Promise<ThreadedProxyHandle> {
  const served: ServedEngine = {
    gate: engine,
    env: engine.env,
    close: () => engine.close(),
    threaded: engine,
  };
  return serve(served, resolveListen(options), resolveLimits(options), options);
}

/** The engine a proxy serves, and what the proxy may do with it. */
interface ServedEngine {
  gate: EngineGate;
  env: Record<string, string>;
  /** Closes the engine when the proxy closes; null when the proxy does not own it. */
  close: (() => Promise<void>) | null;
  /** An engine in its own thread, which can be replaced when a statement will not stop. */
  threaded?: ThreadedEngine;
}

async function serve(
  engine: ServedEngine,
  listen: ReturnType<typeof resolveListen>,
  limits: ResolvedLimits,
  options: ProxyOptions,
): Promise<ThreadedProxyHandle> {
  const server = new ProxyServer(engine, limits, options);
  try {
    await server.start(listen, options.socketDir);
  } catch (error) {
    await server.close();
    throw error;
  }
  return server.handle();
}

class ProxyServer implements SessionHost {
  readonly gate: EngineGate;
  readonly scheduler = new EngineScheduler<ClientSession>(describeHolder);
  readonly transactionSlot = new EngineScheduler<ClientSession>(describeHolder);
  readonly hub = new NotificationHub();
  settings = new Map<string, string>();
  readonly user: string;
  readonly database: string;
  readonly authenticator: PasswordAuthenticator | null;
  readonly testTransactions: boolean;
  testTransactionOpen = false;
  readonly leftInsideTransaction: string[] = [];
  sessionApplied: Map<string, string> | null = new Map();
  sessionOwner: ClientSession | null = null;
  private readonly sessions = new Set<ClientSession>();
  private readonly listeners: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private nextId = 1;
  private closing: Promise<void> | null = null;
  private restarting: Promise<void> | null = null;
  private tcpHost = '';
  private tcpPort = 0;
  private socketPath: string | undefined;
  private socketDir: string | undefined;
  private socketNumber = 0;

  constructor(
    private readonly engine: ServedEngine,
    readonly limits: ResolvedLimits,
    private readonly options: ProxyOptions,
  ) {
    this.gate = engine.gate;
    this.user = engine.env.PGUSER ?? 'postgres';
    this.database = engine.env.PGDATABASE ?? 'postgres';
    this.authenticator = options.password
      ? new PasswordAuthenticator(options.authMethod ?? 'scram-sha-256', options.password)
      : null;
    this.testTransactions = options.testTransactions ?? false;
    // Process ids of clients start high so they do not look like the engine's own.
    this.nextId = 10_000 + Math.floor(Math.random() * 10_000);
  }

  async start(
    listen: { tcp: boolean; host: string; port: number | undefined },
    socketDir: string | undefined,
  ): Promise<void> {
    this.settings = await reportedSettings(this.gate);
    if (listen.tcp) {
      const server = this.createListener();
      await listenOn(server, { host: listen.host, port: listen.port ?? 0 });
      const address = server.address() as net.AddressInfo;
      this.tcpHost = listen.host;
      this.tcpPort = address.port;
    }
    if (socketDir !== undefined) {
      this.socketDir = path.resolve(socketDir);
      this.socketNumber = listen.tcp ? this.tcpPort : (listen.port ?? 5432);
      await prepareSocketDir(this.socketDir);
      const socketPath = path.join(this.socketDir, `.s.PGSQL.${this.socketNumber}`);
      await removeStaleSocket(socketPath);
      const server = this.createListener();
      await listenOn(server, { path: socketPath });
      this.socketPath = socketPath;
      await fs.chmod(socketPath, 0o700).catch(() => {});
    }
  }

  handle(): ThreadedProxyHandle {
    const server = this;
    const tcp = this.tcpPort !== 0;
    const user = encodeURIComponent(this.user);
    const password = this.options.password ? `:${encodeURIComponent(this.options.password)}` : '';
    const database = encodeURIComponent(this.database);
    const uriHost = this.tcpHost.includes(':') ? `[${this.tcpHost}]` : this.tcpHost;
    const connectionString = tcp
      ? `postgresql://${user}${password}@${uriHost}:${this.tcpPort}/${database}`
      : `postgresql://${user}${password}@/${database}?host=${encodeURIComponent(this.socketDir!)}&port=${this.socketNumber}`;
    return {
      host: tcp ? this.tcpHost : this.socketDir!,
      port: tcp ? this.tcpPort : this.socketNumber,
      connectionString,
      socketPath: this.socketPath,
      socketDir: this.socketDir,
      user: this.user,
      database: this.database,
      get clientCount() {
        return server.sessions.size;
      },
      env: {
        DATABASE_URL: connectionString,
        PGHOST: tcp ? this.tcpHost : this.socketDir!,
        PGPORT: String(tcp ? this.tcpPort : this.socketNumber),
        PGUSER: this.user,
        PGDATABASE: this.database,
      },
      clientsGone: (timeoutMs) => this.clientsGone(timeoutMs),
      clients: () =>
        [...this.sessions].filter((session) => session.ready).map((session) => session.describe()),
      beginTest: () => this.beginTest(),
      endTest: (outcome = 'rollback') => this.endTest(outcome),
      close: (reason) => this.close(reason),
    };
  }

  async clientsGone(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  async beginTest(): Promise<void> {
    await this.asTestController(async () => {
      if (this.testTransactionOpen) await this.endOuterTransaction('ROLLBACK');
      this.leftInsideTransaction.length = 0;
      await this.controlSql('BEGIN');
      this.testTransactionOpen = true;
    });
  }

  async endTest(outcome: 'rollback' | 'commit'): Promise<string[]> {
    const leftOpen = [
      ...this.leftInsideTransaction.splice(0),
      ...[...this.sessions]
        .filter((session) => session.ready && session.inOwnTransaction)
        .map((session) => session.describe()),
    ];
    await this.asTestController(async () => {
      if (this.testTransactionOpen)
        await this.endOuterTransaction(outcome === 'commit' ? 'COMMIT' : 'ROLLBACK');
    });
    return leftOpen;
  }

  private async endOuterTransaction(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    this.testTransactionOpen = false;
    // Settings applied inside the test's transaction end with it.
    this.sessionApplied = null;
    for (const session of this.sessions) session.testTransactionEnded();
    await this.controlSql(sql);
  }

  /**
   * Runs test control with the engine to itself: after the unit of work in flight, and without
   * waiting for a client that stays inside a transaction of its own (the test is over for it).
   */
  private async asTestController(fn: () => Promise<void>): Promise<void> {
    if (!this.testTransactions) {
      throw new InvalidInputError(
        'beginTest() and endTest() need a proxy started with testTransactions: true',
      );
    }
    const controller = TEST_CONTROLLER as unknown as ClientSession;
    const wait = this.scheduler.acquire(controller, PINNED_CLIENT_GRACE_MS);
    if (wait) await wait.catch(() => this.scheduler.seize(controller));
    try {
      await fn();
    } finally {
      this.scheduler.release(controller, false);
    }
  }

  private async controlSql(sql: string): Promise<void> {
    const summary = scanBackend(await this.gate.exec(serialize.query(sql)));
    if (summary.errors > 0)
      throw new Error(`${sql} failed in the engine (SQLSTATE ${summary.firstErrorCode})`);
  }

  cancel(processId: number, secretKey: number): void {
    for (const session of this.sessions) {
      if (session.processId !== processId || session.secretKey !== secretKey) continue;
      if (this.scheduler.holder === session) this.cancelRunning();
      else session.cancelWait();
    }
  }

  /**
   * Asks the engine to stop the statement running now. One that computes without ever calling
   * out cannot hear it: when it still runs after cancelGraceMs, its thread is ended and a new
   * engine started (the clients are told the session was lost).
   */
  private cancelRunning(): void {
    const threaded = this.engine.threaded;
    if (!this.gate.cancelRunning() || !threaded?.busy) return;
    const call = threaded.callNumber;
    setTimeout(() => {
      if (!threaded.busy || threaded.callNumber !== call || this.closing) return;
      this.warn(`a cancelled statement ran on for ${this.limits.cancelGraceMs} ms: the engine is replaced`);
      void threaded.replace(`a cancelled statement ran on for ${this.limits.cancelGraceMs} ms`);
    }, this.limits.cancelGraceMs).unref();
  }

  engineFailed(error: unknown, by: ClientSession): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.warn(`client ${by.id}: the engine failed: ${reason}`);
    // Every client's transaction, statements and settings lived in that engine session.
    this.sessionApplied = null;
    const [code, message] =
      error instanceof EngineReplacedError
        ? ['57P01', `terminating connection: ${reason}`]
        : ['XX000', `the engine session was lost: ${reason}`];
    for (const session of this.sessions) void session.abandon(code, message);
  }

  otherClients(except: ClientSession): ClientSession[] {
    return [...this.sessions].filter((session) => session !== except && session.ready);
  }

  sessionLeft(session: ClientSession): void {
    this.sessions.delete(session);
    if (this.sessionOwner === session) this.sessionOwner = null;
    if (this.sessions.size === 0) this.giveMemoryBack();
  }

  /**
   * WebAssembly memory never shrinks: after a big operation the engine keeps its peak. An engine
   * on a data directory loses nothing by a restart, so it restarts once no client is connected.
   */
  private giveMemoryBack(): void {
    const threaded = this.engine.threaded;
    if (!threaded?.onDisk || this.closing || this.restarting) return;
    const memory = threaded.memoryMiB;
    if (memory <= this.limits.engineMemoryLimitMiB) return;
    this.warn(`the engine holds ${memory} MiB after a big operation; restarting it to give the memory back`);
    this.restarting = threaded
      .restart()
      .catch((error: unknown) => this.warn(`the engine restart failed: ${(error as Error).message}`))
      .finally(() => {
        this.restarting = null;
      });
  }

  warn(message: string): void {
    this.options.onWarning?.(message);
  }

  close(reason?: string): Promise<void> {
    this.closing ??= this.shutdown(reason ? `terminating connection: ${reason}` : SHUTDOWN_MESSAGE);
    return this.closing;
  }

  private createListener(): net.Server {
    const server = net.createServer((socket) => this.accept(socket));
    server.on('error', (error) => this.warn(`listener: ${error.message}`));
    this.listeners.push(server);
    return server;
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.closing) {
      socket.destroy();
      return;
    }
    const starting = [...this.sessions].filter((session) => session.starting);
    if (starting.length >= this.limits.maxStartupConnections) {
      // Silent connections must not keep clients out: the one waiting longest makes room.
      this.warn(
        `client ${starting[0]!.id}: closed to make room for a new connection (maxStartupConnections)`,
      );
      void starting[0]!.fatal('53300', 'too many connections are starting up; this one waited longest');
    }
    this.sessions.add(new ClientSession(socket, this, this.nextId++));
  }

  settingNames(): Iterable<string> {
    const names = new Set<string>();
    for (const session of this.sessions) for (const name of session.settings.values.keys()) names.add(name);
    return names;
  }

  roomForClient(): boolean {
    let ready = 0;
    for (const session of this.sessions) if (session.ready) ready++;
    return ready < this.limits.maxConnections;
  }

  private async shutdown(message: string): Promise<void> {
    const stopped = this.listeners.map(
      (listener) => new Promise<void>((resolve) => listener.close(() => resolve())),
    );
    const sessions = [...this.sessions];
    const closeEngine = this.engine.close;
    // An engine in a thread of its own is stopped at once: a statement running now cannot hold
    // the shutdown up.
    const engineStopping = closeEngine && this.engine.threaded ? closeEngine() : null;
    // A closing engine needs no cleanup; a shared one is left as the clients found it.
    const leaving = sessions.map((session) =>
      closeEngine ? session.abandon('57P01', message) : session.fatal('57P01', message),
    );
    await withTimeout(Promise.all(leaving), 5_000);
    for (const socket of this.sockets) socket.destroy();
    this.scheduler.close(new EngineWaitError('57P01', message));
    this.transactionSlot.close(new EngineWaitError('57P01', message));
    await withTimeout(Promise.all(stopped), 2_000);
    if (this.socketPath) await fs.rm(this.socketPath, { force: true });
    if (closeEngine) await (engineStopping ?? closeEngine());
  }
}

/** Who holds the engine, as a waiting client's error names it. */
function describeHolder(holder: ClientSession | typeof TEST_CONTROLLER): string {
  return holder instanceof ClientSession ? holder.describe() : 'the test toolkit';
}

function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      reject(
        new ProxyStartError(`Cannot listen on ${describeListen(options)}: ${error.message}`, {
          cause: error,
        }),
      );
    };
    server.once('error', onError);
    server.listen({ ...options, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function describeListen(options: net.ListenOptions): string {
  return options.path ?? `${options.host}:${options.port}`;
}

/** A socket directory others can write to would let them replace the socket: refuse it. */
async function prepareSocketDir(dir: string): Promise<void> {
  if (!existsSync(dir)) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);
    return;
  }
  const stat = await fs.stat(dir);
  if (!stat.isDirectory()) throw new ProxyStartError(`The socket directory ${dir} is not a directory.`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new ProxyStartError(
      `The socket directory ${dir} belongs to another user (uid ${stat.uid}), who could replace the socket; use a directory of your own, or a missing one the proxy creates.`,
    );
  }
  if ((stat.mode & 0o002) !== 0) {
    throw new ProxyStartError(
      `The socket directory ${dir} is world-writable; use a private directory (0700), or a missing one the proxy creates.`,
    );
  }
}

/** Removes a socket file left by a proxy that did not close, refusing one that still answers. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new ProxyStartError(`Another server is listening on ${socketPath}.`);
  await fs.rm(socketPath, { force: true });
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
