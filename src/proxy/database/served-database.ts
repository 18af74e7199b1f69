import { serialize } from 'pg-protocol';
import { EngineReplacedError, InvalidInputError } from '../../errors.js';
import { readRows } from '../../protocol/backend-rows.js';
import { scanBackend } from '../../protocol/backend-scanner.js';
import { quoteIdent } from '../../protocol/sql-quote.js';
import type { ClientTable } from '../../runtime/client-table.js';
import type { ClientIdentity } from '../../runtime/engine-identity.js';
import type { ThreadedEngine } from '../../runtime/threaded-engine.js';
import type { ClusterCatalogs } from '../cluster/cluster-catalogs.js';
import {
  applyFrames,
  databasesOf,
  OWN_DEPENDENCIES_QUERY,
  readSharedCatalogs,
  SHARED_CATALOGS_QUERY,
  type SharedCatalogs,
  withOwnDependencies,
} from '../cluster/shared-catalogs.js';
import type { PasswordAuthenticator } from '../login/auth.js';
import type { ConnectionCounts, LoginFacts } from '../login/login-checks.js';
import { ROLES_QUERY, type Role, RoleBook } from '../login/roles.js';
import type { ResolvedLimits } from '../options.js';
import { switchFrames } from '../session/session-state.js';
import { type EngineGate, reportedSettings } from './engine-gate.js';
import { EngineScheduler, EngineWaitError } from './engine-scheduler.js';
import type { LockWaits } from './lock-waits.js';
import { NotificationHub } from './notifications.js';

/** An engine the proxy serves a database from, and what the proxy may do with it. */
export interface ServedEngine {
  gate: EngineGate;
  env: Record<string, string>;
  /** Closes the engine when the proxy closes; null when the proxy does not own it. */
  close: (() => Promise<void>) | null;
  /** An engine in its own thread, which can be replaced when a statement will not stop. */
  threaded?: ThreadedEngine;
  /** How its cluster's files are copied (CREATE DATABASE ... TEMPLATE); absent when they cannot be. */
  files?: EngineFiles;
}

/** How an engine's cluster, as it is on its files now, is copied (after a CHECKPOINT). */
export interface EngineFiles {
  /** Writes the cluster into the new directory `to`: the files `keep` accepts (relative paths). */
  copy(to: string, keep: (relative: string) => boolean): Promise<void>;
  /** The directory the engine runs on, when on disk. */
  local: string | null;
}

/** What a served database needs of a client logged in to it (the client's session). */
export interface DatabaseClient {
  readonly processId: number;
  /** Logged in and taking turns. */
  readonly ready: boolean;
  /** It keeps the engine between its units (a transaction, a batch or a COPY is open). */
  readonly pinned: boolean;
  /** Isolation 'transaction': inside a transaction of its own. */
  readonly inOwnTransaction: boolean;
  /** Its session settings, by lower-case name. */
  readonly settings: { readonly values: ReadonlyMap<string, string> };
  /** The client as another client's error names it. */
  describe(): string;
  /** Another client began to wait for the engine (or transaction slot) it holds. */
  someoneWaits(): void;
  /** Whether it made a temporary object of that name. */
  hasTemp(name: string): boolean;
  /**
   * The engine went back to an earlier state: what to give the client again there, as the client
   * (statements and channels are kept per client).
   */
  engineReset(): EngineResetState;
  /** The test's outer transaction ended. */
  testTransactionEnded(): void;
  /** Ends the connection with a FATAL error, cleaning up after it. */
  fatal(code: string, message: string): Promise<void>;
  /**
   * Ends the connection without touching the engine, whose session is gone; `cancelled`: the
   * error its statement ends with first (its statement was stopped by replacing the engine).
   */
  abandon(code: string, message: string, cancelled?: StatementError): Promise<void>;
}

/** Why a running statement was asked to stop, as PostgreSQL's 57014 message says it. */
export type StopReason = 'user request' | 'statement timeout';

/** An error a statement ends with. */
export interface StatementError {
  code: string;
  message: string;
  detail?: string;
}

/** Why a client cannot connect to a database, as PostgreSQL says it. */
export interface DatabaseRefusal {
  code: string;
  message: string;
  detail?: string;
}

/** What a client gives back to an engine put back to an earlier state (see resetEngine). */
export interface EngineResetState {
  /** The Parses of its named prepared statements. */
  parses: Buffer[];
  /** The channels it listens on. */
  channels: string[];
  /** Whom they run as: the client. */
  as: ClientIdentity | undefined;
}

/** What a served database needs from the proxy in front of it (the listeners and all clients). */
export interface ProxyFront {
  readonly limits: ResolvedLimits;
  /** The name of the database the proxy was started on. */
  readonly mainDatabase: string;
  readonly authenticator: PasswordAuthenticator | null;
  readonly closing: boolean;
  cancel(processId: number, secretKey: number): void;
  /** The logged-in clients: all of them, those of `role`, those of `database`. */
  connectionCounts(role: string, database: string): ConnectionCounts;
  warn(message: string): void;
  /** The database `name`, its engine started when it is first asked for; or why not. */
  database(name: string): Promise<ServedDatabase | DatabaseRefusal>;
  /** The logged-in clients as the engines see them (pid and login role). */
  readonly clients: ClientTable;
  /** The catalogs the databases share, as the cluster has them. */
  readonly cluster: ClusterCatalogs;
  /** Clients waiting for an advisory lock another client holds. */
  readonly lockWaits: LockWaits;
  /**
   * After each engine call: delivers the signals the engines' pg_cancel_backend and
   * pg_terminate_backend left, and wakes clients waiting for advisory locks when one was released.
   */
  engineCallEnded(): void;
  /** A client left: the front forgets it. */
  sessionLeft(session: DatabaseClient): void;
  /**
   * The database CREATE DATABASE ... TEMPLATE `name` copies, made ready for it: its engine
   * started, and no client but `client` connected to it (as PostgreSQL, after waiting for them
   * to leave); null when the cluster has no such database (the engine then says so).
   */
  templateSource(name: string, client: DatabaseClient): Promise<ServedDatabase | DatabaseRefusal | null>;
  /**
   * Database `name` was just made by CREATE DATABASE in `source`'s engine, which the caller
   * holds: its cluster is copied from there to serve it.
   */
  copyCreated(source: ServedDatabase, name: string): Promise<void>;
  /** Another database's engine changed the cluster: the main engine, which keeps it, follows soon. */
  clusterChanged(): void;
  /**
   * Whether database `name` may be dropped or renamed now (see ProxyServer.whenUnused); null when
   * it may.
   */
  whenUnused(name: string, force: boolean): Promise<DatabaseRefusal | null>;
}

/** Stands for the proxy itself in the engine's queue: test control, catalog look-ups. */
const PROXY_ITSELF = Symbol('the proxy');
/** How long test control waits for a client's unit of work before taking the engine anyway. */
const PINNED_CLIENT_GRACE_MS = 1_000;

/**
 * One database and the engine that serves it: one engine session shared by the clients
 * connected to it, who take turns on it. Each client's own state (settings, role, transaction)
 * is kept by its session and brought to the engine for its turn.
 */
export class ServedDatabase {
  readonly gate: EngineGate;
  readonly scheduler = new EngineScheduler<DatabaseClient>(describeHolder, heardOfWaiter);
  /**
   * Isolation 'transaction': which client has a transaction of its own open (a savepoint in the
   * test's transaction). One at a time; other clients' statements run meanwhile, inside it.
   */
  readonly transactionSlot = new EngineScheduler<DatabaseClient>(describeHolder, heardOfWaiter);
  readonly hub = new NotificationHub();
  /** ParameterStatus values sent to new clients: the engine's own, as it started. */
  settings = new Map<string, string>();
  readonly user: string;
  /** A test's outer transaction is open right now. */
  testTransactionOpen = false;
  /**
   * Clients that disconnected inside a transaction of their own during the current test,
   * described: the test's end names them with those still inside one.
   */
  readonly leftInsideTransaction: string[] = [];
  /**
   * The settings the engine has from the proxy's switches, and the client they are for; null when
   * not known (after a test's transaction ended, or a new engine).
   */
  sessionApplied: Map<string, string> | null = new Map();
  sessionOwner: DatabaseClient | null = null;
  /**
   * `sessionApplied` when the test's transaction began: its rollback brings the engine's settings
   * back to these (SET, RESET and set_config() are transactional), so the next test's first unit
   * switches only what differs instead of every setting again.
   */
  private appliedAtTestBegin: Map<string, string> | null = null;
  /** Clients logged in to this database. */
  readonly sessions = new Set<DatabaseClient>();
  private restarting: Promise<void> | null = null;
  /** Why the statement that got its engine replaced was cancelled, until its client is told. */
  private stopped: StopReason | null = null;
  /** The roles logins are answered from; null until read, or when reading them failed. */
  private roleBook: RoleBook | null = null;
  /**
   * The engine counts role changes (see runtime/role-changes.ts), so the book is read again only
   * after one; otherwise at every login.
   */
  private rolesTracked = false;
  /** The client table's count of role changes when the book was read. */
  private rolesReadAt = -1;
  /** The catalogs and roles of the state resetEngine last went back to, read once for it. */
  private afterReset: { state: unknown; catalogs: SharedCatalogs; roleBook: RoleBook } | null = null;
  /** The shared catalogs as this engine had them when last brought to the cluster's; null before. */
  private catalogsBase: SharedCatalogs | null = null;
  /** The cluster's generation this engine was last brought to. */
  private catalogsGeneration = -1;
  /** A unit may have changed the shared catalogs: they are read and merged once it has committed. */
  catalogsDirty = false;
  /** A unit here may have changed which of this database's objects depend on a role. */
  dependenciesDirty = false;
  /**
   * The proxy is reading or writing the shared catalogs, at the end of a client's unit: a cancel
   * (the client's, or its leaving) finds no statement of the client's to stop.
   */
  private sharingCatalogs = false;

  /** The main database (the engine the proxy was started on): databases are created and dropped there. */
  readonly main: boolean;
  /** The proxy serves isolation 'transaction' here (see ProxyOptions.testTransactions). */
  readonly testTransactions: boolean;

  constructor(
    readonly engine: ServedEngine,
    readonly front: ProxyFront,
    /** The database's name, as clients ask for it. */
    readonly database: string,
    role: { main: boolean; testTransactions: boolean },
  ) {
    this.gate = engine.gate;
    this.user = engine.env.PGUSER ?? 'postgres';
    this.main = role.main;
    this.testTransactions = role.testTransactions;
  }

  async start(): Promise<void> {
    this.settings = await reportedSettings(this.gate);
    this.rolesTracked = await this.countsRoleChanges();
    // The main engine is where the cluster's catalogs start from; any other is brought to them.
    if (this.main) this.front.cluster.adopt(await this.readCatalogs());
    await this.syncCatalogs().catch((error: unknown) => this.warn((error as Error).message));
  }

  /**
   * Whether the engine's shared catalogs may differ from the cluster's: a unit here changed them,
   * or another engine's change was merged since this one was brought up to date.
   */
  get behindCluster(): boolean {
    return this.catalogsDirty || this.catalogsGeneration !== this.front.cluster.generation;
  }

  /**
   * Merges what this engine committed to the shared catalogs into the cluster's, brings the
   * engine to the cluster's, and reads the roles into the book again. The caller holds the engine
   * between transactions. Inside a test's outer transaction nothing is merged (it is rolled back).
   */
  syncCatalogs(): Promise<void> {
    if (this.testTransactionOpen) return this.readRoles();
    return this.front.cluster.track(this.mergeAndApply());
  }

  private async mergeAndApply(): Promise<void> {
    this.sharingCatalogs = true;
    try {
      await this.mergeAndApplyNow();
    } finally {
      this.sharingCatalogs = false;
    }
  }

  private async mergeAndApplyNow(): Promise<void> {
    const cluster = this.front.cluster;
    const onlyDependencies = !this.catalogsDirty && cluster.generation === this.catalogsGeneration;
    this.catalogsDirty = false;
    if (this.dependenciesDirty) {
      this.dependenciesDirty = false;
      // Most such units changed nothing of it (a table made by a superuser): a smaller read tells.
      if (onlyDependencies && (await this.dependenciesShared())) return;
    }
    const now = await this.readCatalogs();
    const merged = this.catalogsBase !== null && cluster.merge(this.catalogsBase, now);
    const own = cluster.databases.get(this.database);
    const taken = own !== undefined && cluster.takeDependencies(now, own.oid);
    if ((merged || taken) && !this.main) this.front.clusterChanged();
    const target = cluster.current;
    const generation = cluster.generation;
    const behind = !cluster.matches(now);
    if (behind) {
      const ownNow = databasesOf(now).get(this.database)?.oid;
      if (own?.oid !== ownNow) {
        throw new Error(
          `database "${this.database}" has oid ${ownNow} in its engine but ${own?.oid} in the cluster: ` +
            'its shared catalogs are left as they are',
        );
      }
      const applied = readRows(await this.gate.exec(applyFrames(target)));
      if (applied.error)
        throw new Error(`bringing the shared catalogs up to date failed: ${applied.error.message}`);
    }
    this.catalogsBase = target;
    this.catalogsGeneration = generation;
    // Most units that may have changed the shared catalogs did not, or only pg_shdepend (a table made).
    if (merged || behind || !this.roleBook || this.rolesChanged) await this.readRoles();
  }

  /** Whether the cluster has this database's rows of pg_shdepend as its engine has them now. */
  private async dependenciesShared(): Promise<boolean> {
    const own = this.front.cluster.databases.get(this.database);
    if (!own) return false;
    const output = await this.gate.exec(Buffer.concat([this.undoEveryClient(), OWN_DEPENDENCIES_QUERY]));
    return withOwnDependencies(this.front.cluster.current, readSharedCatalogs(output), own.oid) === null;
  }

  /** The engine's shared catalogs, read as its own superuser. */
  private async readCatalogs(): Promise<SharedCatalogs> {
    return readSharedCatalogs(
      await this.gate.exec(Buffer.concat([this.undoEveryClient(), SHARED_CATALOGS_QUERY])),
    );
  }

  /**
   * The engine went back to an earlier state (a reset): so did the cluster, whose only engine it
   * is in the test toolkit.
   */
  private catalogsWentBackTo(now: SharedCatalogs): void {
    this.front.cluster.adopt(now);
    this.catalogsBase = now;
    this.catalogsGeneration = this.front.cluster.generation;
  }

  /**
   * The role `user` logs in as, with which of `settings` it may not set; null when there is no
   * such role. Answered from the book while nothing changed roles since it was read, or while
   * another client holds the engine inside its transaction (it read the book when its turn
   * began, so a change since is its own and not committed: a server would not show it either);
   * read again first otherwise.
   */
  async loginRole(user: string, settings: Iterable<string>): Promise<Role | null> {
    // What a client of another database just committed is merged first.
    await this.front.cluster.settled();
    const holder = this.scheduler.holder;
    const holderInTransaction = holder !== null && typeof holder !== 'symbol' && holder.pinned;
    // Another database's change, merged since this engine was brought up to date (its own
    // changes, committed or not, are the book's business below).
    const behind = this.catalogsGeneration !== this.front.cluster.generation && !this.testTransactionOpen;
    if (behind) {
      // Another database's role changes reach this engine's catalogs before the login is judged.
      await this.asProxy({ waitMs: this.limits.queueTimeoutMs, seize: false }, () => this.syncCatalogs());
    } else if (!this.rolesTracked || !this.roleBook || (this.rolesChanged && !holderInTransaction)) {
      await this.asProxy({ waitMs: this.limits.queueTimeoutMs, seize: false }, () => this.readRoles());
    }
    return this.roleBook!.role(user, settings);
  }

  /** Role `user` as the book last read it (no wait); null when it has no such role. */
  knownRole(user: string): Role | null {
    return this.roleBook?.role(user) ?? null;
  }

  /** The engine counted a change of roles since the book was read. */
  get rolesChanged(): boolean {
    return this.rolesTracked && this.front.clients.rolesVersion() !== this.rolesReadAt;
  }

  /**
   * Reads the roles into the book, as the engine's own superuser, with every setting of the
   * client before undone. The caller holds the engine: the proxy, or a client between its
   * transactions (so that what it committed is in the book before another client's turn).
   */
  async readRoles(): Promise<void> {
    const output = await this.gate.exec(Buffer.concat([this.undoEveryClient(), ROLES_QUERY]));
    // Counted after the read: a count during it is the engine taking note of a change the read
    // already sees.
    const count = this.front.clients.rolesVersion();
    this.roleBook = new RoleBook(output);
    this.rolesReadAt = count;
  }

  /** Whether this engine counts role changes: a role created and rolled back must be counted. */
  private async countsRoleChanges(): Promise<boolean> {
    const before = this.front.clients.rolesVersion();
    const probe = `pglite_oxide_probe_${process.pid}_${Date.now()}`;
    // A subtransaction of its own: whatever the engine's session is in, nothing of it stays.
    const output = await this.gate.exec(
      serialize.query(
        `DO $$BEGIN BEGIN CREATE ROLE ${probe}; RAISE SQLSTATE 'P0001'; EXCEPTION WHEN OTHERS THEN NULL; END; END$$`,
      ),
    );
    return scanBackend(output).errors === 0 && this.front.clients.rolesVersion() !== before;
  }

  get limits(): ResolvedLimits {
    return this.front.limits;
  }

  get authenticator(): PasswordAuthenticator | null {
    return this.front.authenticator;
  }

  cancel(processId: number, secretKey: number): void {
    this.front.cancel(processId, secretKey);
  }

  /** Who is logged in, and the limits a login is checked against (maxConnections, datconnlimit). */
  connections(role: string): Pick<LoginFacts, 'connections' | 'connectionLimits'> {
    return {
      connections: this.front.connectionCounts(role, this.database),
      connectionLimits: {
        all: this.limits.maxConnections,
        database: this.front.cluster.databases.get(this.database)?.connectionLimit ?? -1,
      },
    };
  }

  warn(message: string): void {
    this.front.warn(message);
  }

  open(name: string): Promise<ServedDatabase | DatabaseRefusal> {
    return this.front.database(name);
  }

  /** A client logged in here. */
  join(session: DatabaseClient): void {
    this.sessions.add(session);
  }

  /** The clients logged in here, other than `except`. */
  otherClients(except: DatabaseClient): DatabaseClient[] {
    return [...this.sessions].filter((session) => session !== except && session.ready);
  }

  /** Every setting name the connected clients have a value of their own for. */
  settingNames(): Iterable<string> {
    const names = new Set<string>();
    for (const session of this.sessions) for (const name of session.settings.values.keys()) names.add(name);
    return names;
  }

  sessionLeft(session: DatabaseClient): void {
    this.sessions.delete(session);
    if (this.sessionOwner === session) this.sessionOwner = null;
    this.front.sessionLeft(session);
    if (this.sessions.size === 0) this.giveMemoryBack();
  }

  /**
   * Runs frames on the engine between clients' units, as the engine's own superuser: catalog
   * look-ups for logins and new connections' databases. Every setting of the client before is
   * undone first, not only its role: its search_path could put a function of its own ahead of
   * pg_catalog's, for the superuser to run.
   */
  async runAsEngineUser(frames: Buffer): Promise<Uint8Array> {
    return this.asProxy({ waitMs: this.limits.queueTimeoutMs, seize: false }, async () =>
      this.gate.exec(Buffer.concat([this.undoEveryClient(), frames])),
    );
  }

  /**
   * Frames that bring the engine back to its own login and settings, as if nothing were known of
   * what it runs as now (so the undo cannot miss anything); the next client's settings are then
   * applied in full.
   */
  private undoEveryClient(): Buffer {
    this.sessionApplied = new Map();
    this.sessionOwner = null;
    return switchFrames(null, new Map(), this.settingNames(), this.user).undo!;
  }

  /**
   * Runs `frames` for `client`, a client of another database, as that client (its login role,
   * settings and pid), and returns the engine's answer. The caller holds the engine.
   */
  async runForVisitor(
    frames: Buffer,
    client: { identity: ClientIdentity | undefined; settings: ReadonlyMap<string, string> },
  ): Promise<Uint8Array> {
    const { undo, apply } = switchFrames(null, client.settings, this.settingNames(), this.user);
    this.sessionApplied = null;
    this.sessionOwner = null;
    if (undo) await this.gate.exec(undo);
    try {
      if (apply) await this.gate.exec(apply, client.identity);
      return await this.gate.exec(frames, client.identity);
    } finally {
      const back = switchFrames(client.settings, new Map(), [], this.user).undo;
      if (back) await this.gate.exec(back);
    }
  }

  /** Runs `work` with the engine held by the proxy: no client's unit runs meanwhile. */
  whileHeld<T>(work: (gate: EngineGate) => Promise<T>): Promise<T> {
    return this.asProxy({ waitMs: this.limits.queueTimeoutMs, seize: false }, () => work(this.gate));
  }

  async beginTest(): Promise<void> {
    this.checkTestTransactions();
    await this.asProxy({ waitMs: PINNED_CLIENT_GRACE_MS, seize: true }, async () => {
      if (this.testTransactionOpen) await this.endOuterTransaction('ROLLBACK');
      this.leftInsideTransaction.length = 0;
      await this.controlSql('BEGIN');
      this.appliedAtTestBegin = this.sessionApplied && new Map(this.sessionApplied);
      this.testTransactionOpen = true;
    });
  }

  async endTest(outcome: 'rollback' | 'commit'): Promise<string[]> {
    this.checkTestTransactions();
    const leftOpen = [
      ...this.leftInsideTransaction.splice(0),
      ...[...this.sessions]
        .filter((session) => session.ready && session.inOwnTransaction)
        .map((session) => session.describe()),
    ];
    await this.asProxy({ waitMs: PINNED_CLIENT_GRACE_MS, seize: true }, async () => {
      if (this.testTransactionOpen)
        await this.endOuterTransaction(outcome === 'commit' ? 'COMMIT' : 'ROLLBACK');
    });
    return leftOpen;
  }

  /**
   * Runs `reset`, which puts the engine back to an earlier state (a snapshot restore), while no
   * client's unit runs; then gives the connected clients back what their sessions had in it:
   * their settings (at their next unit), their named prepared statements and LISTENs (now).
   */
  resetEngine<T>(reset: () => Promise<T>, state?: unknown): Promise<T> {
    return this.asProxy({ waitMs: PINNED_CLIENT_GRACE_MS, seize: true }, async () => {
      const result = await reset();
      this.sessionApplied = new Map();
      this.sessionOwner = null;
      this.appliedAtTestBegin = null;
      // The roles went back too, and nothing counted that. A state reset to before has them as
      // they were read then (a test toolkit resets to the template's state before every test).
      const known = state !== undefined && this.afterReset?.state === state ? this.afterReset : null;
      if (known) {
        this.catalogsWentBackTo(known.catalogs);
        this.roleBook = known.roleBook;
        this.rolesReadAt = this.front.clients.rolesVersion();
      } else {
        this.catalogsWentBackTo(await this.readCatalogs());
        await this.readRoles();
        if (state !== undefined)
          this.afterReset = { state, catalogs: this.catalogsBase!, roleBook: this.roleBook! };
      }
      for (const session of this.sessions) {
        const { parses, channels, as } = session.engineReset();
        // Each Parse with a Sync of its own: one that fails (its table is gone) spoils no other.
        if (parses.length > 0)
          await this.gate.exec(Buffer.concat(parses.flatMap((parse) => [parse, serialize.sync()])), as);
        if (channels.length > 0)
          await this.gate.exec(
            serialize.query(channels.map((channel) => `LISTEN ${quoteIdent(channel)}`).join('; ')),
            as,
          );
      }
      return result;
    });
  }

  private checkTestTransactions(): void {
    if (!this.testTransactions) {
      throw new InvalidInputError(
        'beginTest() and endTest() need a proxy started with testTransactions: true',
      );
    }
  }

  private async endOuterTransaction(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    this.testTransactionOpen = false;
    // Settings applied inside the test's transaction end with it; a commit keeps them, unknown.
    this.sessionApplied = sql === 'ROLLBACK' ? this.appliedAtTestBegin : null;
    this.sessionOwner = null;
    this.appliedAtTestBegin = null;
    for (const session of this.sessions) session.testTransactionEnded();
    await this.controlSql(sql);
  }

  /**
   * Runs `fn` with the engine to the proxy itself, after the unit of work in flight. Test control
   * does not wait long for a client that stays inside a transaction of its own (the test is over
   * for it): it seizes the engine after `waitMs`. Other calls fail with EngineWaitError then.
   */
  private async asProxy<T>(turn: { waitMs: number; seize: boolean }, fn: () => Promise<T>): Promise<T> {
    const proxy = PROXY_ITSELF as unknown as DatabaseClient;
    const wait = this.scheduler.acquire(proxy, turn.waitMs);
    if (wait) {
      await wait.catch((error: unknown) => {
        if (!turn.seize) throw error;
        this.scheduler.seize(proxy);
      });
    }
    try {
      return await fn();
    } finally {
      this.scheduler.release(proxy, false);
    }
  }

  private async controlSql(sql: string): Promise<void> {
    const summary = scanBackend(await this.gate.exec(serialize.query(sql)));
    if (summary.errors > 0)
      throw new Error(`${sql} failed in the engine (SQLSTATE ${summary.firstErrorCode})`);
  }

  /**
   * Asks the engine to stop the statement running now. One that computes without ever calling
   * out cannot hear it: when it still runs after cancelGraceMs, its thread is ended and a new
   * engine started (the clients are told the session was lost).
   */
  cancelRunning(why: StopReason = 'user request'): void {
    if (this.sharingCatalogs) return;
    const threaded = this.engine.threaded;
    if (!this.gate.cancelRunning() || !threaded?.busy) return;
    const call = threaded.callNumber;
    setTimeout(() => {
      if (!threaded.busy || threaded.callNumber !== call || this.front.closing) return;
      const reason = `a statement cancelled (${why}) ran on for ${this.limits.cancelGraceMs} ms`;
      this.warn(`${reason}: the engine is replaced`);
      this.stopped = why;
      void threaded.replace(reason);
    }, this.limits.cancelGraceMs).unref();
  }

  engineFailed(error: unknown, by: DatabaseClient): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.warn(`client ${by.processId}: the engine failed: ${reason}`);
    // Every client's transaction, statements and settings lived in that engine session; the
    // roles are read again from the engine that follows.
    this.sessionApplied = null;
    this.rolesReadAt = -1;
    this.appliedAtTestBegin = null;
    const [code, message] =
      error instanceof EngineReplacedError
        ? ['57P01', `terminating connection: ${reason}`]
        : ['XX000', `the engine session was lost: ${reason}`];
    // The client whose statement would not stop hears first that it was cancelled, as on a server.
    const stopped = error instanceof EngineReplacedError ? this.stopped : null;
    this.stopped = null;
    for (const session of this.sessions) {
      const cancelled =
        session === by && stopped
          ? { code: '57014', message: `canceling statement due to ${stopped}`, detail: reason }
          : undefined;
      void session.abandon(code, message, cancelled);
    }
  }

  /**
   * WebAssembly memory never shrinks: after a big operation the engine keeps its peak. An engine
   * on a data directory loses nothing by a restart, so it restarts once no client is connected.
   */
  private giveMemoryBack(): void {
    const threaded = this.engine.threaded;
    if (!threaded?.onDisk || this.front.closing || this.restarting) return;
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

  /**
   * Ends every client here with `code`/`message` and closes the engine when the proxy owns it.
   * A closing engine needs no cleanup; a shared one is left as the clients found it.
   */
  async close(code: string, message: string): Promise<void> {
    const closeEngine = this.engine.close;
    // An engine in a thread of its own is stopped at once: a statement running now cannot hold
    // the shutdown up.
    const engineStopping = closeEngine && this.engine.threaded ? closeEngine() : null;
    const leaving = [...this.sessions].map((session) =>
      closeEngine ? session.abandon(code, message) : session.fatal(code, message),
    );
    await withTimeout(Promise.all(leaving), 5_000);
    this.scheduler.close(new EngineWaitError(code, message));
    this.transactionSlot.close(new EngineWaitError(code, message));
    if (closeEngine) await (engineStopping ?? closeEngine());
  }
}

/** A client began to wait for `holder`: one idle in its transaction too long is ended now. */
function heardOfWaiter(holder: DatabaseClient | typeof PROXY_ITSELF): void {
  if (typeof holder !== 'symbol') holder.someoneWaits();
}

/** Who holds the engine, as a waiting client's error names it. */
function describeHolder(holder: DatabaseClient | typeof PROXY_ITSELF): string {
  return typeof holder !== 'symbol'
    ? holder.describe()
    : 'the proxy itself (test control, or a look-up for a login)';
}

export async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** Whether `done` came true within `timeoutMs` (looked at every 10 ms). */
export async function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}
