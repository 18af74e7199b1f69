import type { Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { EngineCrashedError } from '../../errors.js';
import { readRows } from '../../protocol/backend-rows.js';
import { type BackendSummary, leadingNotifications, scanBackend } from '../../protocol/backend-scanner.js';
import {
  type ErrorFields,
  errorResponse,
  readyForQuery,
  type TransactionStatus,
} from '../../protocol/backend-writer.js';
import { rewriteErrors } from '../../protocol/error-rewrite.js';
import { statementText } from '../../protocol/extended-messages.js';
import { BACKSLASH_DIALECT, type SqlDialect, STANDARD_DIALECT } from '../../protocol/sql-lexer.js';
import type { TableEntry } from '../../runtime/client-table.js';
import type { ClientIdentity } from '../../runtime/engine-identity.js';
import { EngineWaitError, type WaitLimit } from '../database/engine-scheduler.js';
import type { NotificationTarget } from '../database/notifications.js';
import type { DatabaseClient, EngineResetState, ServedDatabase } from '../database/served-database.js';
import type { StatementEffects, TempObject } from '../sql/statement-effects.js';
import { BEGIN_AUTOCOMMIT, END_AUTOCOMMIT } from '../sql/test-transaction.js';
import { ClientTransaction, splitAutocommitOutput, withAutocommit } from './client-transaction.js';
import type { CopyInCollector } from './copy-in.js';
import { clientReply } from './engine-reply.js';
import {
  ClientSettings,
  durationMs,
  readSettingsQuery,
  settingsRead,
  switchFrames,
} from './session-state.js';
import { StatementNames } from './statement-names.js';

/** `login`: until the client is in (see ClientLogin); `ready`: taking turns on its database. */
type Phase = 'login' | 'ready' | 'closed';

/**
 * Commands that change the per-role and per-database settings or the comments of the cluster
 * (pg_db_role_setting, pg_shdescription), which no catalog cache announces.
 */
const SHARED_SETTINGS_TAGS = new Set(['ALTER ROLE', 'ALTER DATABASE', 'COMMENT']);

/**
 * Commands that may change which objects depend on a role (pg_shdepend: objects made, dropped,
 * given another owner, granted or revoked), which DROP ROLE in any database checks.
 */
const DEPENDENCY_TAGS = /^(CREATE|ALTER|DROP|GRANT|REVOKE|REASSIGN OWNED|IMPORT FOREIGN SCHEMA)\b/;

export const SYNC_FRAME = serialize.sync();
const PARSE = 0x50;
const NOTIFICATION_RESPONSE = 0x41;

/**
 * The engine side of a client's session: taking its turns on the engine of its database, bringing
 * the engine to its settings, running its units of work (with their savepoints under a test's
 * transaction) and answering it from the engine's output.
 */
export abstract class EngineTurns implements NotificationTarget, DatabaseClient {
  readonly processId: number;
  protected phase: Phase = 'login';
  protected readonly names: StatementNames;
  /** This client's transaction status, as the engine last reported it to this client. */
  protected currentStatus: TransactionStatus = 'I';
  /** The engine holds extended messages of this client that no Sync has ended yet. */
  protected engineBatchOpen = false;
  protected copy: CopyInCollector | null = null;
  protected discardUntilSync = false;
  /** The engine's side of a failed batch is being ended: its ReadyForQuery is not the client's yet. */
  private readyAtClientSync = false;
  /** This client's session settings: what it asked for at startup, then what it changed. */
  settings = new ClientSettings(new Map());
  /** A unit changed this client's settings: they are read back from the engine once its batch ends. */
  protected settingsToRead: string[] | null = null;
  /** Temporary objects this client made in a test's outer transaction, dropped when it leaves. */
  protected readonly tempObjects: TempObject[] = [];
  /** The client ran something on the engine, so it may have left state there. */
  protected usedEngine = false;
  /** When the client's transaction status last changed. */
  protected stateSince = Date.now();
  protected idleTimer: NodeJS.Timeout | undefined;
  /** Its statement ran past its statement_timeout and was cancelled by the proxy. */
  private deadlinePassed = false;
  /** It has been idle holding the engine past the proxy's limit: ended when another client waits. */
  private idleOverdue = false;
  /** Isolation 'transaction': the client's own transaction and its units' savepoints. */
  protected readonly transaction = new ClientTransaction();
  /** The client its units run for: its login role and its pid (see EngineGate.exec); unset before login. */
  protected identity: ClientIdentity | undefined;
  /** This client in the engines' client table; null before login (or when the table is full). */
  protected tableEntry: TableEntry | null = null;
  /** The version of its LISTEN channels the hub has (see ClientChannels). */
  private channelsSeen = 0;
  /** The role the client logged in as (the engine's own user until it is in). */
  protected loginRole: { name: string; superuser: boolean } = { name: '', superuser: true };

  /** How the engine reads '...' strings right now (standard_conforming_strings is reported). */
  protected get dialect(): SqlDialect {
    const conforming =
      this.settings.values.get('standard_conforming_strings') ??
      this.host.settings.get('standard_conforming_strings');
    return conforming === 'off' ? BACKSLASH_DIALECT : STANDARD_DIALECT;
  }

  protected get status(): TransactionStatus {
    return this.currentStatus;
  }

  protected set status(status: TransactionStatus) {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    this.stateSince = Date.now();
  }

  /**
   * The engine must stay with this client until its transaction, batch or COPY ends. Under a
   * test's transaction, a client's own transaction is a savepoint in it, and other clients'
   * statements may run inside it meanwhile, unless it failed (the engine's transaction is then
   * aborted until the client rolls back).
   */
  get pinned(): boolean {
    const shared = this.host.testTransactionOpen && this.transaction.own && this.status === 'T';
    return (this.status !== 'I' && !shared) || this.engineBatchOpen || this.copy !== null;
  }

  /** Answers a unit the engine must not see with an error, as Postgres would for that statement. */
  protected async refuse(fields: Pick<ErrorFields, 'code' | 'message' | 'detail'>): Promise<void> {
    this.write(errorResponse({ severity: 'ERROR', ...fields }));
    if (this.engineBatchOpen) return this.runUnit([SYNC_FRAME], null, true);
    this.write(readyForQuery(this.status));
  }

  /** Waits for the engine; false when the wait ended without it (the client was told why). */
  protected takeEngine(endsWithSync: boolean): boolean | Promise<boolean> {
    const wait = this.host.scheduler.acquire(this, () => this.waitLimit());
    if (!wait) return (this.phase === 'ready' || this.releaseNow()) && this.startTurn();
    this.tableEntry?.activity.waiting('engine');
    return this.waitForEngine(wait, endsWithSync).then((taken) => {
      this.tableEntry?.activity.waiting(null);
      return taken && this.startTurn();
    });
  }

  /**
   * A turn begins: the roles are read again first when a client before changed them (and this
   * client is between transactions, so all of it was committed or rolled back), then the engine
   * is brought to this client's settings.
   */
  private startTurn(): boolean | Promise<boolean> {
    const host = this.host;
    // What another database's client just committed to the cluster is seen, as on a server.
    if (host.front.cluster.merging && !this.pinned)
      return host.front.cluster.settled().then(() => this.turnBegins());
    return this.turnBegins();
  }

  private turnBegins(): boolean | Promise<boolean> {
    const host = this.host;
    if (this.pinned || !(host.rolesChanged || host.behindCluster)) return this.bringMySettings();
    // When the read fails, logins go on from the book as it was; an engine that failed fails
    // this client's turn next.
    return (host.behindCluster ? host.syncCatalogs() : host.readRoles())
      .catch((error: unknown) => this.host.warn(`reading the roles failed: ${(error as Error).message}`))
      .then(() => this.bringMySettings());
  }

  /**
   * Brings the engine to this client's settings (statement_timeout, search_path, TimeZone, role,
   * ...), undoing those of the client before: only what differs, and nothing at all while the
   * engine stays with one client or no client has any. True once done; false when the engine failed.
   */
  protected bringMySettings(): boolean | Promise<boolean> {
    const applied = this.host.sessionApplied;
    const mine = this.settings.values;
    if (applied !== null && (this.host.sessionOwner === this || (applied.size === 0 && mine.size === 0))) {
      this.host.sessionOwner = this;
      return true;
    }
    const { undo, apply } = switchFrames(applied, mine, this.host.settingNames(), this.host.user);
    this.host.sessionApplied = new Map(mine);
    this.host.sessionOwner = this;
    // Undone as the engine's login; applied as this client's, which PostgreSQL checks as such.
    const applyMine = () => (apply ? this.settingsSwitched(this.engineCall(apply)) : true);
    if (!undo) return applyMine();
    const undone = this.settingsSwitched(this.proxyCall(undo));
    return undone instanceof Promise ? undone.then((ok) => ok && applyMine()) : undone && applyMine();
  }

  /**
   * Reads this client's settings back from the engine after a unit changed them (by SET, RESET,
   * set_config() or a ROLLBACK), first setting again the startup values a RESET undid.
   */
  protected async readMySettings(resets: readonly string[]): Promise<void> {
    const again = switchFrames(new Map(), this.settings.startupValuesReset(resets), [], this.host.user).apply;
    const names = new Set([...this.settings.readNames(), ...this.host.front.clients.settingNames()]);
    const query = readSettingsQuery([...names]);
    // As the client: its own search_path is in force, and the read must not run as anyone else.
    const output = await this.engineCall(again ? Buffer.concat([again, query]) : query);
    if (!output) return;
    const values = settingsRead(output, this.host.user, this.loginRole.name);
    if (!values) return;
    // Whatever a role that is not a superuser did, it runs as itself: never as the engine's user.
    if (!this.loginRole.superuser) values.set('session_authorization', this.loginRole.name);
    this.settings.values = values;
    const applicationName = values.get('application_name');
    if (applicationName !== undefined) this.tableEntry?.activity.named(applicationName);
    if (this.host.sessionOwner === this) this.host.sessionApplied = new Map(values);
  }

  protected settingsSwitched(
    output: Uint8Array | null | Promise<Uint8Array | null>,
  ): boolean | Promise<boolean> {
    if (output instanceof Promise) return output.then((ready) => this.settingsSwitched(ready));
    if (!output) return false;
    const summary = scanBackend(output);
    if (summary.errors > 0) {
      this.host.warn(`client ${this.id}: a startup setting was refused (SQLSTATE ${summary.firstErrorCode})`);
    }
    return true;
  }

  protected async waitForEngine(wait: Promise<void>, endsWithSync: boolean): Promise<boolean> {
    try {
      await wait;
    } catch (error) {
      if (!(error instanceof EngineWaitError)) throw error;
      this.write(errorResponse({ severity: 'ERROR', code: error.sqlstate, message: error.message }));
      if (endsWithSync) this.write(readyForQuery(this.status));
      else this.discardUntilSync = true;
      return false;
    }
    return this.phase === 'ready' || this.releaseNow();
  }

  protected releaseNow(): false {
    // A leaving client keeps a pinned engine until its cleanup has rolled back and synced.
    this.host.scheduler.release(this, this.pinned);
    return false;
  }

  /**
   * Runs frames on the engine as one unit and answers the client. `lockDeadline`: the unit runs
   * again after waiting for an advisory lock (see waitForLock), until then; 'last' on its last try.
   */
  protected async runUnit(
    frames: Buffer[],
    effects: StatementEffects[] | null,
    endsWithSync: boolean,
    lockDeadline?: number | 'last',
  ): Promise<void> {
    // Steps are awaited only when they have to wait: an await lets the socket's queued work run
    // before this client's reply is written, which adds several microseconds to a round trip.
    const outsideTransaction = this.status === 'I' && !this.engineBatchOpen && endsWithSync;
    if (lockDeadline === undefined) this.tableEntry?.activity.started(queryText(frames));
    let taken = this.takeEngine(endsWithSync);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    // It may have left while its turn began (the roles were read, its settings brought).
    if (this.phase !== 'ready') return void this.releaseNow();
    const bytes = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    // Taken after the engine was brought to this client's settings, which counts as a change too.
    const settingsBefore = this.tableEntry?.settingsVersion();
    const catalogsBefore = this.host.front.clients.rolesVersion();
    const deadline = this.statementDeadline();
    let call = this.unitCall(bytes, endsWithSync);
    if (call instanceof Promise) call = await call;
    clearTimeout(deadline);
    if (!call) return;
    // Known before the client hears of it: a login or new connection it makes next waits for it.
    const merged =
      this.host.front.clients.rolesVersion() !== catalogsBefore ? this.host.front.cluster.expect() : null;
    if (merged) this.host.catalogsDirty = true;
    const finished = this.finishUnit(
      call,
      frames,
      effects,
      endsWithSync,
      lockDeadline,
      outsideTransaction,
      settingsBefore,
    );
    return merged ? finished.finally(merged) : finished;
  }

  private async finishUnit(
    call: UnitOutput,
    frames: Buffer[],
    effects: StatementEffects[] | null,
    endsWithSync: boolean,
    lockDeadline: number | 'last' | undefined,
    outsideTransaction: boolean,
    settingsBefore: number | undefined,
  ): Promise<void> {
    if (
      this.tableEntry?.takeLockWait() &&
      lockDeadline !== 'last' &&
      outsideTransaction &&
      !this.host.testTransactionOpen &&
      leftNothing(call.output)
    )
      return this.waitForLock(frames, effects, call.output, lockDeadline);
    // Before its output is routed: a client gets the notifications of a channel it just listened on.
    if (this.tableEntry && this.tableEntry.channelsVersion() !== this.channelsSeen)
      await this.readMyChannels();
    const summary = this.absorb(call.output, endsWithSync ? 'ready' : 'partial');
    this.deadlinePassed = false;
    if (!summary) return;
    let closed = this.closeAutocommit(summary, call.released);
    if (closed instanceof Promise) closed = await closed;
    if (!closed) return;
    if (effects && summary.errors === 0) await this.applyEffects(effects);
    // The engine saw the unit change settings by some path (SET in a DO block, set_config() in a
    // function): they are read back, so that the next client does not get them.
    if (this.tableEntry && this.tableEntry.settingsVersion() !== settingsBefore) {
      this.settings.touched = true;
      this.settingsToRead ??= [];
    }
    if (this.settings.touched && summary.lastCommandTag === 'ROLLBACK') this.settingsToRead ??= [];
    if (this.settingsToRead && !this.engineBatchOpen) {
      const resets = this.settingsToRead;
      this.settingsToRead = null;
      await this.readMySettings(resets);
    }
    const tag = summary.lastCommandTag ?? '';
    if (SHARED_SETTINGS_TAGS.has(tag)) this.host.catalogsDirty = true;
    // PostgreSQL records no dependency on its built-in roles: only a cluster with roles of its own has any.
    else if (this.host.front.cluster.hasUserRoles && DEPENDENCY_TAGS.test(tag))
      this.host.dependenciesDirty = true;
    // What the unit committed to the roles and databases reaches the other databases' engines now.
    if (
      (this.host.catalogsDirty || this.host.dependenciesDirty) &&
      !this.pinned &&
      !this.host.testTransactionOpen
    ) {
      await this.host
        .syncCatalogs()
        .catch((error: unknown) =>
          this.host.warn(`sharing the cluster's catalogs failed: ${(error as Error).message}`),
        );
    }
    return this.releaseOrIdle();
  }

  /**
   * The unit would have waited for an advisory lock another client holds. The engine cannot wait
   * (the holder needs it to release the lock), but the unit ran outside a transaction block and
   * failed in its first statement, so nothing of it stayed: it waits off the engine until a lock is
   * released anywhere, or its lock_timeout (else the proxy's queue limit) passes, then runs again,
   * as a server's statement waits and then takes the lock. The last try's answer is the client's.
   */
  private async waitForLock(
    frames: Buffer[],
    effects: StatementEffects[] | null,
    failed: Uint8Array,
    deadline: number | undefined,
  ): Promise<void> {
    this.routeOnly(failed);
    // Its named statements were parsed before the lock was asked for: they are parsed again.
    const closes = namedParses(frames).map((name) => serialize.close({ type: 'S', name }));
    if (closes.length > 0) {
      const closed = await this.engineCall(Buffer.concat([...closes, SYNC_FRAME]));
      if (!closed) return;
      this.routeOnly(closed);
    }
    deadline ??= Date.now() + this.waitLimit().ms;
    const wait = this.host.front.lockWaits.wait(this, deadline - Date.now());
    this.releaseOrIdle();
    this.tableEntry?.activity.waiting('advisory');
    let released: boolean;
    try {
      released = await wait;
    } catch (error) {
      if (!(error instanceof EngineWaitError)) throw error;
      this.write(errorResponse({ severity: 'ERROR', code: error.sqlstate, message: error.message }));
      this.write(readyForQuery(this.status));
      return;
    } finally {
      this.tableEntry?.activity.waiting(null);
    }
    if (this.phase !== 'ready') return;
    return this.runUnit(frames, effects, true, released ? deadline : 'last');
  }

  /**
   * A unit's call into the engine. Under a test's transaction a unit outside the client's own
   * transaction gets a savepoint, sent in the same call, with its RELEASE when the unit ends with
   * ReadyForQuery. `released` is the RELEASE's reply then. Null when the engine failed.
   */
  protected unitCall(
    bytes: Uint8Array,
    endsWithSync: boolean,
  ): UnitOutput | null | Promise<UnitOutput | null> {
    const opening =
      this.host.testTransactionOpen && this.transaction.openAutocommit(true, this.engineBatchOpen);
    if (!opening) {
      const output = this.engineCall(bytes);
      if (output instanceof Promise)
        return output.then((ready) => ready && { output: ready, released: null });
      return output && { output, released: null };
    }
    const output = this.engineCall(withAutocommit(bytes, endsWithSync));
    if (output instanceof Promise)
      return output.then((ready) => ready && this.autocommitParts(ready, endsWithSync));
    return output && this.autocommitParts(output, endsWithSync);
  }

  protected autocommitParts(output: Uint8Array, released: boolean): UnitOutput | null {
    const parts = splitAutocommitOutput(output, released);
    if (!parts) {
      this.host.engineFailed(
        new EngineCrashedError('the engine answered a unit in an unexpected shape'),
        this,
      );
      return null;
    }
    this.checkInternalOutput(BEGIN_AUTOCOMMIT, parts.savepoint);
    return { output: parts.unit, released: parts.release };
  }

  /**
   * One call into the engine, for this client (PostgreSQL's checks of who the session logged in as
   * see its role; pg_backend_pid() is its pid), or as the engine's own login for `as` null; null
   * when the engine failed (every client is told).
   */
  protected engineCall(
    bytes: Uint8Array,
    blob?: Uint8Array,
    as: ClientIdentity | null = this.identity ?? null,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    this.usedEngine = true;
    try {
      const gate = this.host.gate;
      const who = as ?? undefined;
      const output = blob ? gate.execWithBlob(bytes, blob, who) : gate.exec(bytes, who);
      if (output instanceof Uint8Array) return this.callEnded(output);
      return output.then(
        (ready) => this.callEnded(ready),
        (error: unknown) => this.engineFailed(error),
      );
    } catch (error) {
      return this.engineFailed(error);
    }
  }

  /**
   * An engine call is over: the clients it signalled (pg_terminate_backend) hear it now, and the
   * notifications its output starts with (what a client's savepoint released into a test's
   * transaction, see client-channels.ts) are routed; returns the rest of the output. Each names
   * the client that notified; one the engine sent itself names this client, as absorb does.
   */
  private callEnded(output: Uint8Array): Uint8Array {
    this.host.front.engineCallEnded();
    if (output[0] !== NOTIFICATION_RESPONSE) return output;
    const { notifications, rest } = leadingNotifications(output);
    for (const { processId, channel, payload } of notifications) {
      const sender = this.host.front.clients.find(processId) ? processId : this.processId;
      this.host.hub.route(channel, payload, sender);
    }
    return rest;
  }

  /**
   * The proxy's own frames between clients (undoing the settings of the client before): as the
   * engine's login, so that neither client's rights decide whether they can be undone, and
   * nothing of it counts as this client's (see client-settings.ts).
   */
  protected proxyCall(bytes: Uint8Array): Uint8Array | null | Promise<Uint8Array | null> {
    return this.engineCall(bytes, undefined, null);
  }

  protected engineFailed(error: unknown): null {
    this.host.engineFailed(error, this);
    return null;
  }

  /**
   * Reads the engine's output of a unit, keeps transaction status and settings, routes
   * notifications, and writes the rest to this client.
   */
  protected absorb(
    output: Uint8Array,
    expect: 'ready' | 'partial',
    drop?: ReadonlySet<number>,
    collect?: Uint8Array[],
  ): BackendSummary | null {
    const summary = scanBackend(output);
    if (summary.malformed || (expect === 'ready' && summary.status === null)) {
      this.host.engineFailed(new EngineCrashedError('the engine answered without ReadyForQuery'), this);
      return null;
    }
    if (expect === 'partial') {
      // After an error the engine keeps skipping to the client's Sync; the client's messages up
      // to its Sync are skipped here too, as Postgres skips them.
      this.engineBatchOpen = true;
      if (summary.errors > 0) this.discardUntilSync = true;
    } else if (summary.status) {
      if (summary.status === 'I') this.names.transactionEnded();
      this.status = this.clientStatus(summary.status);
      this.engineBatchOpen = false;
      this.tableEntry?.activity.ready(this.status);
    }
    let reply = clientReply(output, summary, {
      ends: this.readyAtClientSync ? 'partial' : expect,
      // Under a test's outer transaction the engine always reports one; the client sees its own.
      clientStatus: this.status,
      drop,
      explainTransactionBlock: this.host.testTransactionOpen,
    });
    if (summary.errors > 0 && this.names.namesPortals)
      reply = rewriteErrors(reply, (text) => this.names.withClientNames(text));
    if (this.deadlinePassed && summary.firstErrorCode === '57014') {
      reply = rewriteErrors(reply, (text, field) =>
        field === 'M' && text === USER_CANCEL ? 'canceling statement due to statement timeout' : text,
      );
    }
    if (collect) collect.push(reply);
    else if (reply.length > 0) this.write(reply);
    for (const notification of summary.notifications) {
      this.host.hub.route(notification.channel, notification.payload, this.processId);
    }
    return summary;
  }

  /**
   * Reads the channels this client listens on from the engine, which keeps them per client (by
   * any path: a LISTEN in a DO block or a function counts too), after they changed.
   */
  protected async readMyChannels(): Promise<void> {
    const version = this.tableEntry?.channelsVersion() ?? 0;
    const output = await this.engineCall(serialize.query('SELECT pg_catalog.pg_listening_channels()'));
    if (!output) return;
    this.routeOnly(output);
    const { rows, error } = readRows(output);
    // Read again after the next unit when it could not be read now (a failed transaction).
    if (error) return;
    this.channelsSeen = version;
    this.host.hub.setChannels(
      this,
      rows.map(([channel]) => channel!),
    );
  }

  /** Records what SET and RESET of a unit that succeeded changed. */
  protected async applyEffects(effects: StatementEffects[]): Promise<void> {
    for (const effect of effects) {
      if (effect.touchesSettings) {
        this.settings.changed(effect.settings, effect.resets);
        this.settingsToRead = [...(this.settingsToRead ?? []), ...effect.resets];
      }
      // Only a test's outer transaction has the clients share a temporary schema.
      if (this.host.testTransactionOpen) this.tempObjects.push(...effect.tempObjects);
    }
  }

  /** Engine output of the proxy's own statements: only its notifications matter. */
  protected routeOnly(output: Uint8Array): BackendSummary {
    const summary = scanBackend(output);
    if (summary.status) this.status = this.clientStatus(summary.status);
    for (const notification of summary.notifications) {
      this.host.hub.route(notification.channel, notification.payload, this.processId);
    }
    return summary;
  }

  /**
   * Ends this client's turn: the engine goes to the next client unless this one stays pinned (its
   * idle timer runs then). A batch that failed before the client's Sync is ended first.
   */
  protected releaseOrIdle(): void | Promise<void> {
    if (this.engineBatchOpen && this.discardUntilSync && this.phase === 'ready') return this.endFailedBatch();
    const pinned = this.pinned && this.phase === 'ready';
    this.host.scheduler.release(this, pinned);
    if (pinned) this.armIdleTimer();
  }

  /**
   * The client's extended batch failed before its Sync. A server holds nothing while it skips the
   * client's messages up to the Sync (the error ended the implicit transaction); neither does the
   * proxy: the engine gets a Sync now, and the client's ReadyForQuery waits for the client's own.
   * Inside a transaction block the engine stays this client's, its transaction failed, as on a
   * server.
   */
  private async endFailedBatch(): Promise<void> {
    this.readyAtClientSync = true;
    try {
      await this.runUnit([SYNC_FRAME], null, true);
    } finally {
      this.readyAtClientSync = false;
    }
  }

  /**
   * statement_timeout kept outside the engine too: a statement that computes without calling out
   * never hears the engine's own alarm, so once it has run past the timeout the proxy cancels it
   * (and replaces the engine when it still runs after the grace). Only an engine in a thread of
   * its own can be reached while a statement runs.
   */
  private statementDeadline(): NodeJS.Timeout | undefined {
    const ms = durationMs(this.settings.values.get('statement_timeout'));
    if (!ms || !this.host.engine.threaded) return undefined;
    return setTimeout(() => {
      this.deadlinePassed = true;
      this.host.cancelRunning('statement timeout');
    }, ms + DEADLINE_MARGIN_MS).unref();
  }

  /**
   * Starts the clock on this client holding the engine idle (in a transaction, a batch or a COPY).
   * Its own idle_in_transaction_session_timeout ends it as a server would; the proxy's limit only
   * while another client waits for the engine: an idle client nobody waits for harms nobody.
   */
  protected armIdleTimer(): void {
    this.stopIdleTimer();
    const own = durationMs(this.settings.values.get('idle_in_transaction_session_timeout'));
    const limit = this.host.limits.idleInTransactionTimeoutMs;
    const ownFirst = own !== null && own <= limit;
    this.idleTimer = setTimeout(
      () => {
        if (ownFirst || this.host.scheduler.anyWaiting || this.host.transactionSlot.anyWaiting)
          this.endIdle();
        else this.idleOverdue = true;
      },
      ownFirst ? own : limit,
    ).unref();
  }

  protected stopIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleOverdue = false;
  }

  someoneWaits(): void {
    if (this.idleOverdue) this.endIdle();
  }

  private endIdle(): void {
    this.idleOverdue = false;
    this.host.warn(`client ${this.id}: idle in transaction too long; rolled back and disconnected`);
    void this.fatal('25P03', 'terminating connection due to idle-in-transaction timeout');
  }

  /** How long this client waits for the engine or a lock: by its own settings, else the proxy's limit. */
  protected waitLimit(): WaitLimit {
    const lock = durationMs(this.settings.values.get('lock_timeout'));
    const statement = durationMs(this.settings.values.get('statement_timeout'));
    if (statement && (!lock || statement < lock)) return { ms: statement, by: 'statement_timeout' };
    if (lock) return { ms: lock, by: 'lock_timeout' };
    return { ms: this.host.limits.queueTimeoutMs, by: 'queueTimeoutMs' };
  }

  /** The transaction status this client would get from a server of its own. */
  protected clientStatus(engine: TransactionStatus): TransactionStatus {
    return this.transaction.clientStatus(engine, this.host.testTransactionOpen);
  }

  /** Isolation 'transaction': a unit outside the client's own transaction gets a savepoint. */
  protected openAutocommit(): boolean | Promise<boolean> {
    const sql = this.transaction.openAutocommit(this.host.testTransactionOpen, this.engineBatchOpen);
    return sql ? this.internalSql(sql) : true;
  }

  /**
   * Ends the unit's savepoint once the unit is over: kept when it succeeded, undone when not.
   * `released` is the reply of a RELEASE already sent with the unit.
   */
  protected closeAutocommit(
    summary: BackendSummary,
    released: Uint8Array | null = null,
  ): boolean | Promise<boolean> {
    const sql = this.transaction.closeAutocommit(summary.status, this.engineBatchOpen);
    if (!sql) return true;
    if (released && sql === END_AUTOCOMMIT) return this.checkInternalOutput(sql, released);
    return this.internalSql(sql);
  }

  /** SQL of the proxy's own; false when the engine failed (every client was told). */
  protected internalSql(sql: string): boolean | Promise<boolean> {
    const output = this.engineCall(serialize.query(sql));
    if (output instanceof Promise) return output.then((ready) => this.checkInternalOutput(sql, ready));
    return this.checkInternalOutput(sql, output);
  }

  protected checkInternalOutput(sql: string, output: Uint8Array | null): boolean {
    if (!output) return false;
    const summary = scanBackend(output);
    if (summary.errors > 0)
      this.host.warn(`client ${this.id}: ${sql} failed (SQLSTATE ${summary.firstErrorCode})`);
    return true;
  }

  protected write(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  constructor(
    protected readonly socket: Socket,
    /** The database the client logs in to: the main one until its startup names another. */
    protected host: ServedDatabase,
    readonly id: number,
  ) {
    this.processId = id;
    this.names = new StatementNames(id);
  }

  // What the database and its other clients ask of a client (see DatabaseClient).
  abstract readonly ready: boolean;
  abstract readonly inOwnTransaction: boolean;
  abstract describe(): string;
  abstract hasTemp(name: string): boolean;
  abstract engineReset(): EngineResetState;
  abstract testTransactionEnded(): void;
  abstract abandon(code: string, message: string): Promise<void>;
  abstract deliver(message: Buffer): void;

  /** Ends the connection with a FATAL error; its engine state is cleaned up as it leaves. */
  abstract fatal(code: string, message: string, detail?: string): Promise<void>;
}

/** What a unit's engine call gave: its own output, and the reply of a RELEASE sent with it. */
interface UnitOutput {
  output: Uint8Array;
  released: Uint8Array | null;
}

/** The SQL a unit runs, as pg_stat_activity shows it: its first Query's or Parse's; null when it has none. */
/** Whether a unit's output shows nothing done: no command completed, and no transaction left open. */
function leftNothing(output: Uint8Array): boolean {
  const summary = scanBackend(output);
  return summary.errors > 0 && summary.lastCommandTag === null && summary.status === 'I';
}

/** The engine's names of the statements a unit's Parse messages prepare (the unnamed one aside). */
function namedParses(frames: readonly Buffer[]): string[] {
  return frames
    .filter((frame) => frame[0] === PARSE && frame[5] !== 0)
    .map((frame) => frame.toString('utf8', 5, frame.indexOf(0, 5)));
}

/** How much later than the engine's own alarm the proxy cancels a statement past its statement_timeout. */
const DEADLINE_MARGIN_MS = 50;
const USER_CANCEL = 'canceling statement due to user request';

function queryText(frames: readonly Buffer[]): Buffer | null {
  for (const frame of frames) {
    const text = statementText(frame);
    if (text) return text;
  }
  return null;
}
