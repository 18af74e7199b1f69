import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ProxyStartError } from '../errors.js';
import { ClientTable } from '../runtime/client-table.js';
import { writeClusterImage } from '../runtime/cluster-image.js';
import { defaultRuntime } from '../runtime/default-runtime.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import type { ThreadedEngine } from '../runtime/threaded-engine.js';
import { ClusterCatalogs } from './cluster/cluster-catalogs.js';
import { ClusterDatabases } from './cluster/cluster-databases.js';
import { type DatabaseOpener, databaseOpener, diskFiles } from './database/database-engines.js';
import { RuntimeGate } from './database/engine-gate.js';
import { LockWaits } from './database/lock-waits.js';
import {
  type DatabaseClient,
  type DatabaseRefusal,
  type ProxyFront,
  ServedDatabase,
  type ServedEngine,
  waitUntil,
  withTimeout,
} from './database/served-database.js';
import { PasswordAuthenticator } from './login/auth.js';
import type { ConnectionCounts } from './login/login-checks.js';
import { type ProxyOptions, type ResolvedLimits, resolveLimits, resolveListen } from './options.js';
import { ClientSession } from './session/client-session.js';

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
   * Runs `reset`, which puts the engine back to an earlier state behind the proxy's back (a
   * `ResettableEngine.reset()` of the engine it serves), while no client's statement runs. Clients
   * still connected keep their sessions: settings, named prepared statements and LISTENs are
   * given back to them in the engine. Resolves with what `reset` resolves with. `state` names
   * the state `reset` goes back to: after a reset to a state named before, the roles and shared
   * catalogs are known without reading them (each costs milliseconds).
   */
  resetEngine<T>(reset: () => Promise<T>, state?: unknown): Promise<T>;
  /**
   * Closes the engines of the databases other than the main one (started when a client asked for
   * them); their clients are ended with 57P01. The test toolkit does so between test files.
   */
  closeDatabases(): Promise<void>;
  /**
   * Stops accepting, ends every client with 57P01, then closes the engine if the proxy owns it.
   * `reason` replaces PostgreSQL's "due to administrator command" in what the clients are told.
   */
  close(reason?: string): Promise<void>;
}

const SHUTDOWN_MESSAGE = 'terminating connection due to administrator command';

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
    files: runtime.inMemory
      ? { copy: async (to, keep) => writeClusterImage(await runtime.clusterFiles(), to, keep), local: null }
      : diskFiles(runtime.paths.pgdata),
  };
  const databases = databaseOpener({
    runtimeRoot: runtime.paths.pgroot,
    pgdata: runtime.paths.pgdata,
    env: runtime.env,
    settings: runtime.settings,
    kind: runtime.inMemory ? 'memory' : 'disk',
    threaded: false,
  });
  const handle = await serve(served, databases, listen, limits, options);
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
    files:
      engine.spec.kind === 'memory'
        ? {
            copy: async (to, keep) => {
              const files = engine.clusterFiles();
              if (!files) throw new Error('the engine reported no files');
              await writeClusterImage(files, to, keep);
            },
            local: null,
          }
        : diskFiles(engine.spec.pgdata),
  };
  const { spec } = engine;
  const databases = databaseOpener({
    runtimeRoot: spec.runtimeRoot,
    pgdata: spec.pgdata,
    env: engine.env,
    settings: spec.settings ?? {},
    kind: spec.kind,
    threaded: true,
  });
  return serve(served, databases, resolveListen(options), resolveLimits(options), options);
}

async function serve(
  engine: ServedEngine,
  databases: DatabaseOpener | null,
  listen: ReturnType<typeof resolveListen>,
  limits: ResolvedLimits,
  options: ProxyOptions,
): Promise<ThreadedProxyHandle> {
  const server = new ProxyServer(engine, databases, limits, options);
  try {
    await server.start(listen, options.socketDir);
  } catch (error) {
    await server.close();
    throw error;
  }
  return server.handle();
}

/**
 * The proxy's front: its listeners and every connection. Each client logs in to a database, which
 * serves it from an engine of its own: the main one, or another started when first asked for.
 */
class ProxyServer implements ProxyFront {
  readonly authenticator: PasswordAuthenticator | null;
  private readonly main: ServedDatabase;
  /** The databases other than the main one. */
  private readonly databases: ClusterDatabases;
  private readonly sessions = new Set<ClientSession>();
  /** The logged-in clients as the engines see them, for pg_cancel_backend and pg_terminate_backend by pid. */
  readonly clients = new ClientTable();
  readonly lockWaits = new LockWaits();
  readonly cluster = new ClusterCatalogs();
  private readonly listeners: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private nextId = 1;
  private closingDown: Promise<void> | null = null;
  private tcpHost = '';
  private tcpPort = 0;
  private socketPath: string | undefined;
  private socketDir: string | undefined;
  private socketNumber = 0;

  constructor(
    engine: ServedEngine,
    opener: DatabaseOpener | null,
    readonly limits: ResolvedLimits,
    private readonly options: ProxyOptions,
  ) {
    this.main = new ServedDatabase(engine, this, engine.env.PGDATABASE ?? 'postgres', {
      main: true,
      testTransactions: options.testTransactions ?? false,
    });
    engine.gate.attachClients(this.clients);
    this.databases = new ClusterDatabases(this, this.main, opener);
    this.authenticator = options.password
      ? new PasswordAuthenticator(options.authMethod ?? 'scram-sha-256', options.password)
      : null;
    // Process ids of clients start high so they do not look like the engine's own.
    this.nextId = 10_000 + Math.floor(Math.random() * 10_000);
  }

  get closing(): boolean {
    return this.closingDown !== null;
  }

  get mainDatabase(): string {
    return this.main.database;
  }

  async start(
    listen: { tcp: boolean; host: string; port: number | undefined },
    socketDir: string | undefined,
  ): Promise<void> {
    await this.main.start();
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
    const main = this.main;
    const tcp = this.tcpPort !== 0;
    const user = encodeURIComponent(main.user);
    const password = this.options.password ? `:${encodeURIComponent(this.options.password)}` : '';
    const database = encodeURIComponent(main.database);
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
      user: main.user,
      database: main.database,
      get clientCount() {
        return server.sessions.size;
      },
      env: {
        DATABASE_URL: connectionString,
        PGHOST: tcp ? this.tcpHost : this.socketDir!,
        PGPORT: String(tcp ? this.tcpPort : this.socketNumber),
        PGUSER: main.user,
        PGDATABASE: main.database,
      },
      clientsGone: (timeoutMs) => this.clientsGone(timeoutMs),
      clients: () =>
        [...this.sessions].filter((session) => session.ready).map((session) => session.describe()),
      beginTest: () => main.beginTest(),
      endTest: (outcome = 'rollback') => main.endTest(outcome),
      resetEngine: (reset, state) => main.resetEngine(reset, state),
      closeDatabases: async () => {
        await this.databases.closeAll(SHUTDOWN_MESSAGE);
        await this.databases.removeCopies();
      },
      close: (reason) => this.close(reason),
    };
  }

  clientsGone(timeoutMs: number): Promise<boolean> {
    return waitUntil(() => this.sessions.size === 0, timeoutMs);
  }

  database(name: string): Promise<ServedDatabase | DatabaseRefusal> {
    return this.databases.database(name);
  }

  templateSource(name: string, client: DatabaseClient): Promise<ServedDatabase | DatabaseRefusal | null> {
    return this.databases.templateSource(name, client);
  }

  copyCreated(source: ServedDatabase, name: string): Promise<void> {
    return this.databases.copyCreated(source, name);
  }

  whenUnused(name: string, force: boolean): Promise<DatabaseRefusal | null> {
    return this.databases.whenUnused(name, force);
  }

  clusterChanged(): void {
    this.databases.clusterChanged();
  }

  cancel(processId: number, secretKey: number): void {
    for (const session of this.sessions) {
      if (session.processId === processId && session.secretKey === secretKey) session.cancelRequested();
    }
  }

  sessionLeft(session: ClientSession): void {
    this.sessions.delete(session);
    this.clients.remove(session.processId);
    // Its advisory locks went with it.
    this.lockWaits.wakeAll();
  }

  /**
   * After each engine call: wakes clients waiting for an advisory lock when one was released, and
   * delivers what the engines' pg_cancel_backend and pg_terminate_backend left for clients (cheap
   * when there is nothing).
   */
  engineCallEnded(): void {
    this.lockWaits.released(this.clients.locksReleasedVersion());
    const signals = this.clients.takeSignals();
    if (signals.length === 0) return;
    setImmediate(() => {
      for (const { pid, signal } of signals) {
        const session = [...this.sessions].find((candidate) => candidate.processId === pid);
        if (!session) continue;
        if (signal === 'cancel') session.cancelRequested();
        else void session.fatal('57P01', SHUTDOWN_MESSAGE);
      }
    });
  }

  connectionCounts(role: string, database: string): ConnectionCounts {
    const counts = { all: 0, role: 0, database: 0 };
    for (const session of this.sessions) {
      const client = session.loggedIn;
      if (!client) continue;
      counts.all++;
      if (client.role === role) counts.role++;
      if (client.database === database) counts.database++;
    }
    return counts;
  }

  warn(message: string): void {
    this.options.onWarning?.(message);
  }

  close(reason?: string): Promise<void> {
    this.closingDown ??= this.shutdown(reason ? `terminating connection: ${reason}` : SHUTDOWN_MESSAGE);
    return this.closingDown;
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
    if (this.closingDown) {
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
    this.sessions.add(new ClientSession(socket, this.main, this.nextId++));
  }

  private async shutdown(message: string): Promise<void> {
    const stopped = this.listeners.map(
      (listener) => new Promise<void>((resolve) => listener.close(() => resolve())),
    );
    // Clients still starting have no database yet.
    for (const session of this.sessions) if (session.starting) void session.fatal('57P01', message);
    await this.databases.settleForShutdown();
    await Promise.all([this.main.close('57P01', message), this.databases.closeAll(message)]);
    for (const socket of this.sockets) socket.destroy();
    await withTimeout(Promise.all(stopped), 2_000);
    if (this.socketPath) await fs.rm(this.socketPath, { force: true });
    await this.databases.removeCopies();
  }
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
