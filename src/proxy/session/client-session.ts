import type { Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { EngineCrashedError, errorMessage, ProtocolViolationError } from '../../errors.js';
import { type BackendSummary, scanBackend } from '../../protocol/backend-scanner.js';
import {
  commandComplete,
  copyInResponse,
  type ErrorFields,
  errorResponse,
  readyForQuery,
  type TransactionStatus,
} from '../../protocol/backend-writer.js';
import {
  BIND,
  CLOSE,
  COPY_DATA,
  COPY_DONE,
  COPY_FAIL,
  checkEmpty,
  checkFunctionCall,
  cstring,
  DESCRIBE,
  decodeExecute,
  decodeQuery,
  EXECUTE,
  FLUSH,
  FUNCTION_CALL,
  PARSE,
  QUERY,
  SYNC,
  TERMINATE,
} from '../../protocol/extended-messages.js';
import { type FrontendMessage, FrontendReader, printable } from '../../protocol/frontend-reader.js';
import {
  BACKSLASH_DIALECT,
  type SqlDialect,
  STANDARD_DIALECT,
  splitStatements,
} from '../../protocol/sql-lexer.js';
import { quoteIdent } from '../../protocol/sql-quote.js';
import type { ClientIdentity } from '../../runtime/engine-identity.js';
import { EngineWaitError } from '../database/engine-scheduler.js';
import type { NotificationTarget } from '../database/notifications.js';
import type { ServedDatabase } from '../database/served-database.js';
import { type Admission, ClientLogin, type LoginConnection } from '../login/client-login.js';
import { welcomeMessages } from '../login/startup.js';
import { withOwnPreparedNames } from '../sql/sql-prepared.js';
import {
  type CopyInPlan,
  type DatabaseStatement,
  type StatementEffects,
  statementEffects,
  type TempObject,
} from '../sql/statement-effects.js';
import {
  BEGIN_AUTOCOMMIT,
  END_AUTOCOMMIT,
  replies,
  type Statement,
  statementsWithControl,
} from '../sql/test-transaction.js';
import { ClientTransaction, splitAutocommitOutput, withAutocommit } from './client-transaction.js';
import { CopyInCollector, copyColumnsProbe, errorFrames, LOAD_ACKNOWLEDGEMENTS } from './copy-in.js';
import { clientReply } from './engine-reply.js';
import { ExtendedBatch, STATEMENT_QUOTE_BYTES } from './extended-batch.js';
import { cleanupFrames } from './session-cleanup.js';
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

/** An unfinished extended batch is sent on to the engine once it is this big. */
const BATCH_FLUSH_BYTES = 1024 * 1024;
const SYNC_FRAME = serialize.sync();
const READY_FOR_QUERY = 0x5a;

/**
 * One client connection: its startup, its messages grouped into units of work, and what it
 * leaves behind in the shared engine session when it goes.
 */
export class ClientSession implements NotificationTarget {
  readonly processId: number;
  readonly secretKey: number;
  private phase: Phase = 'login';
  private readonly login: ClientLogin;
  private readonly reader: FrontendReader;
  private readonly names: StatementNames;
  /** This client's transaction status, as the engine last reported it to this client. */
  private currentStatus: TransactionStatus = 'I';
  /** The engine holds extended messages of this client that no Sync has ended yet. */
  private engineBatchOpen = false;
  private readonly batch: ExtendedBatch;
  private copy: CopyInCollector | null = null;
  private discardUntilSync = false;
  /** This client's session settings: what it asked for at startup, then what it changed. */
  settings = new ClientSettings(new Map());
  /** A unit changed this client's settings: they are read back from the engine once its batch ends. */
  private settingsToRead: string[] | null = null;
  /** Names of SQL-level prepared statements (PREPARE) this client made. */
  private readonly sqlPrepared = new Set<string>();
  /** Temporary objects this client made, dropped when it leaves. */
  private readonly tempObjects: TempObject[] = [];
  /** The client ran something on the engine, so it may have left state there. */
  private usedEngine = false;
  /** The start of the client's last statement, for other clients' errors. */
  private lastStatement = '';
  /** When the client's transaction status last changed. */
  private stateSince = Date.now();
  private pumping = false;
  private work: Promise<void> | null = null;
  private paused = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private leaving: Promise<void> | null = null;
  /** The engine session this client used is gone (restarted or closing): nothing to clean up. */
  private engineStateLost = false;
  /** Isolation 'transaction': the client's own transaction and its units' savepoints. */
  private readonly transaction = new ClientTransaction();
  /** The client its units run for: its login role and its pid (see EngineGate.exec); unset before login. */
  private identity: ClientIdentity | undefined;

  constructor(
    private readonly socket: Socket,
    /** The database the client logs in to: the main one until its startup names another. */
    private host: ServedDatabase,
    readonly id: number,
  ) {
    this.processId = id;
    this.secretKey = (Math.random() * 0x7fffffff) | 0;
    this.reader = new FrontendReader({
      maxStartupBytes: 10_000,
      maxMessageBytes: host.limits.maxMessageBytes,
    });
    this.names = new StatementNames(id);
    this.batch = new ExtendedBatch(this.names);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => void this.leave());
    this.login = new ClientLogin(this.loginConnection(), host, (admission) => this.admitted(admission));
  }

  /** What logging in may do to this connection. */
  private loginConnection(): LoginConnection {
    const session = this;
    return {
      id: this.id,
      get closed() {
        return session.phase === 'closed';
      },
      write: (bytes) => this.write(bytes),
      fatal: (code, message, detail) => this.fatal(code, message, detail),
      endQuietly: () => {
        this.phase = 'closed';
        this.socket.end();
        void this.leave();
      },
      stopReading: () => this.socket.pause(),
    };
  }

  /** How the engine reads '...' strings right now (standard_conforming_strings is reported). */
  private get dialect(): SqlDialect {
    const conforming =
      this.settings.values.get('standard_conforming_strings') ??
      this.host.settings.get('standard_conforming_strings');
    return conforming === 'off' ? BACKSLASH_DIALECT : STANDARD_DIALECT;
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  private get status(): TransactionStatus {
    return this.currentStatus;
  }

  private set status(status: TransactionStatus) {
    if (status === this.currentStatus) return;
    this.currentStatus = status;
    this.stateSince = Date.now();
  }

  /** Isolation 'transaction': the client is inside a transaction of its own. */
  get inOwnTransaction(): boolean {
    return this.transaction.own;
  }

  /** This client as another client's error names it: who, in which state, doing what. */
  describe(): string {
    const who = `client ${this.processId}${this.applicationName ? ` (${this.applicationName})` : ''}`;
    const since = ((Date.now() - this.stateSince) / 1000).toFixed(1);
    const scheduler = this.host.scheduler;
    const idle =
      scheduler.holder === this ? 'busy' : scheduler.isWaiting(this) ? 'waiting for the engine' : 'idle';
    const state =
      this.status === 'I' ? idle : this.status === 'E' ? 'in a failed transaction' : 'in a transaction';
    const last = this.lastStatement ? `, its last statement "${brief(this.lastStatement)}"` : '';
    return `${who}, ${state} for ${since} s${last}`;
  }

  /** Connected and not yet logged in. */
  get starting(): boolean {
    return this.phase === 'login';
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

  deliver(message: Buffer): void {
    if (this.phase === 'ready') this.write(message);
  }

  /** Ends the connection with a FATAL error; its engine state is cleaned up as it leaves. */
  fatal(code: string, message: string, detail?: string): Promise<void> {
    if (this.phase !== 'closed' && this.socket.writable) {
      this.socket.end(errorResponse({ severity: 'FATAL', code, message, detail }));
    }
    return this.leave();
  }

  /** Ends the connection without touching the engine, whose session this client used is gone. */
  abandon(code: string, message: string): Promise<void> {
    this.engineStateLost = true;
    return this.fatal(code, message);
  }

  /**
   * The engine was put back to an earlier state: what this client made in it is gone. Returns
   * the Parse of each of its named statements, for the proxy to prepare them again.
   */
  engineReset(): Buffer[] {
    this.tempObjects.length = 0;
    this.sqlPrepared.clear();
    return this.names.openStatementParses();
  }

  /** The test's outer transaction ended: whatever this client had open inside it went with it. */
  testTransactionEnded(): void {
    this.host.transactionSlot.release(this, false);
    this.transaction.forget();
    this.status = 'I';
    clearTimeout(this.idleTimer);
  }

  /** A CancelRequest named this client: its running statement is asked to stop, or its wait ends. */
  cancelRequested(): void {
    if (this.host.scheduler.holder === this) this.host.cancelRunning();
    else this.cancelWait();
  }

  /** Ends a queued wait of this client for the engine (CancelRequest). */
  cancelWait(): void {
    this.host.scheduler.cancel(this, new EngineWaitError('57014', 'canceling statement due to user request'));
  }

  leave(): Promise<void> {
    this.leaving ??= this.finish();
    return this.leaving;
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    this.reader.push(chunk);
    if (!this.paused && this.reader.buffered > this.host.limits.maxMessageBytes + 1024 * 1024) {
      this.paused = true;
      this.socket.pause();
    }
    if (!this.pumping) this.work = this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.phase !== 'closed' && this.login.state !== 'refused') {
        if (this.login.state === 'startup') {
          const packet = this.reader.nextStartup();
          if (!packet) break;
          const starting = this.login.onStartupPacket(packet);
          if (starting) await starting;
          continue;
        }
        const message = this.reader.next();
        if (!message) break;
        const pending = this.phase === 'login' ? this.login.onAuthMessage(message) : this.onMessage(message);
        if (pending) await pending;
      }
      if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
    } catch (error) {
      if (error instanceof ProtocolViolationError && this.login.state === 'startup') {
        // As PostgreSQL: a broken startup packet (or pg's Terminate before one) closes the
        // connection without a word to the client, and is only logged.
        this.host.warn(`client ${this.id}: ${error.message}`);
        this.socket.destroy();
        void this.leave();
      } else if (error instanceof ProtocolViolationError) {
        this.host.warn(`client ${this.id}: ${error.message}`);
        void this.fatal('08P01', error.message);
      } else {
        this.host.warn(`client ${this.id}: ${errorMessage(error)}`);
        void this.fatal('XX000', `pglite-oxide proxy: ${errorMessage(error)}`);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The client is in: it gets what a server sends after authentication, and its turns begin. */
  private admitted(admission: Admission): void {
    this.host = admission.database;
    this.settings = admission.settings;
    this.reader.authenticated();
    const { role } = admission;
    this.identity = { role: role.oid, pid: this.processId };
    const own = (name: string) => {
      if (name === 'is_superuser' && role.name !== this.host.user) return role.superuser ? 'on' : 'off';
      return this.settings.values.get(name.toLowerCase());
    };
    this.phase = 'ready';
    this.host.join(this);
    this.write(welcomeMessages(this.host.settings, own, this.processId, this.secretKey));
  }

  /** Its application_name: what it set, or what it gave at startup. */
  private get applicationName(): string {
    return this.settings.values.get('application_name') ?? this.login.applicationName;
  }

  /** Routes one message of a ready client; returns a promise when engine work was started. */
  private onMessage(message: FrontendMessage): Promise<void> | undefined {
    clearTimeout(this.idleTimer);
    if (this.copy) return this.onCopyMessage(message);
    switch (message.type) {
      case QUERY:
        return this.onQuery(message);
      case PARSE:
      case BIND:
      case DESCRIBE:
      case CLOSE:
      case EXECUTE:
        // Postgres skips these after an error, up to the client's Sync.
        if (this.discardUntilSync) return undefined;
        if (message.type === EXECUTE && this.names.isSpentCopyPortal(decodeExecute(message.body).portal)) {
          return this.refuseSpentPortal(message);
        }
        return this.gather(message);
      case SYNC:
        checkEmpty(message.body);
        if (this.discardUntilSync) {
          this.discardUntilSync = false;
          this.batch.take();
          if (this.engineBatchOpen) return this.runUnit([SYNC_FRAME], null, true);
          this.write(readyForQuery(this.status));
          return undefined;
        }
        this.batch.push(message.frame);
        return this.runBatch(true);
      case FLUSH:
        checkEmpty(message.body);
        if (this.batch.length > 0 && !this.discardUntilSync) return this.runBatch(false);
        return undefined;
      case FUNCTION_CALL:
        checkFunctionCall(message.body);
        if (this.discardUntilSync) return undefined;
        if (this.batch.length > 0) return this.thenAgain(this.runBatch(false), message);
        return this.runUnit([message.frame], null, true);
      case TERMINATE:
        void this.leave();
        return undefined;
      case COPY_DATA:
      case COPY_DONE:
      case COPY_FAIL:
        // Postgres ignores these outside COPY: they follow a COPY that already failed.
        return undefined;
      default:
        throw new ProtocolViolationError(`invalid frontend message type '${printable(message.type)}'`);
    }
  }

  /** Adds an extended message to the batch; runs the batch when it cannot wait for the Sync. */
  private gather(message: FrontendMessage): Promise<void> | undefined {
    const statement = this.batch.add(message, this.dialect, this.host.testTransactions);
    if (statement !== null) this.lastStatement = statement;
    // Postgres answers an Execute of COPY FROM STDIN with CopyInResponse at once: clients wait
    // for it without sending Flush.
    if (this.batch.startsCopy || this.batch.bytes > BATCH_FLUSH_BYTES) return this.runBatch(false);
    return undefined;
  }

  private onQuery(message: FrontendMessage): Promise<void> | undefined {
    const sqlEnd = decodeQuery(message.body);
    if (this.discardUntilSync) return undefined;
    // Extended messages before it run first: an error there makes Postgres skip this Query.
    if (this.batch.length > 0) return this.thenAgain(this.runBatch(false), message);
    // A simple Query replaces the unnamed statement and portal.
    this.names.closedStatement('');
    this.names.closedPortal('');
    let sql = message.body.toString('utf8', 0, sqlEnd);
    this.lastStatement = message.body.toString('utf8', 0, Math.min(sqlEnd, STATEMENT_QUOTE_BYTES));
    let frames = [message.frame];
    // Two clients may both PREPARE "q": each gets engine names of its own.
    const own = withOwnPreparedNames(sql, (name) => this.names.sqlName(name), this.dialect);
    if (own !== null) {
      sql = own;
      frames = [serialize.query(own)];
    }
    const effects = statementEffects(sql, this.dialect);
    if (effects?.refusal) return this.refuse(effects.refusal);
    if (effects?.deallocateAll) return this.deallocateAllMine(sql);
    if (effects?.discard && this.status === 'I' && this.host.otherClients(this).length > 0) {
      return this.discardMine(effects.discard, sql);
    }
    if (effects && effects.tempObjects.length > 0) {
      const clash = this.tempClash(effects.tempObjects);
      if (clash) return this.refuse(clash);
    }
    if (effects?.database) return this.runDatabaseStatement(effects.database, frames, effects);
    if (this.host.testTransactionOpen) {
      const statements = statementsWithControl(sql, this.dialect);
      if (statements) return this.runUnderTestTransaction(statements);
    }
    if (effects?.copyIn) return this.startCopy(effects.copyIn, false, []);
    return this.runUnit(frames, effects ? [effects] : null, true);
  }

  /** Whether this client made a temporary object of that name, and has not left. */
  hasTemp(name: string): boolean {
    return this.tempObjects.some((object) => object.name === name);
  }

  /**
   * Temporary objects live in the one engine session all clients share: a name another connected
   * client made cannot be made again until it leaves. PostgreSQL's error, saying why.
   */
  private tempClash(objects: readonly TempObject[]): Pick<ErrorFields, 'code' | 'message' | 'detail'> | null {
    for (const { name } of objects) {
      const owner = this.host.otherClients(this).find((other) => other.hasTemp(name));
      if (!owner) continue;
      return {
        code: '42P07',
        message: `relation "${name}" already exists`,
        detail:
          `Client ${owner.processId} made a temporary object of that name and is still connected: pglite-oxide ` +
          'serves the clients of a database from one engine session, whose temporary schema they share. ' +
          'Use another name, or end that connection first.',
      };
    }
    return null;
  }

  /**
   * DEALLOCATE ALL would remove every client's prepared statements from the shared session: the
   * proxy removes this client's own and answers as the server would.
   */
  private async deallocateAllMine(sql: string): Promise<void> {
    if (splitStatements(sql, this.dialect).length > 1) {
      return this.refuse({
        code: '0A000',
        message: 'DEALLOCATE ALL must be the only statement of its query when served through pglite-oxide',
      });
    }
    let taken = this.takeEngine(true);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    const names = [...this.sqlPrepared, ...this.names.engineStatementNames()];
    if (names.length > 0) {
      const output = await this.engineCall(
        serialize.query(names.map((name) => `DEALLOCATE ${quoteIdent(name)}`).join('; ')),
      );
      if (!output) return;
      this.routeOnly(output);
    }
    this.sqlPrepared.clear();
    for (const name of [...this.names.statements]) this.names.closedStatement(name);
    this.write(Buffer.concat([commandComplete('DEALLOCATE ALL'), readyForQuery(this.status)]));
    this.releaseOrIdle();
  }

  /**
   * DISCARD ALL and DISCARD TEMP while other clients are connected: the engine would discard their
   * state too. The proxy discards this client's own (its temporary objects; for ALL also its
   * prepared statements, channels and settings) and answers as the server would.
   */
  private async discardMine(what: 'ALL' | 'TEMP', sql: string): Promise<void> {
    if (splitStatements(sql, this.dialect).length > 1) {
      return this.refuse({
        code: '0A000',
        message: `DISCARD ${what} must be the only statement of its query when other clients are connected`,
      });
    }
    let taken = this.takeEngine(true);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    const hub = this.host.hub;
    const channels = what === 'ALL' ? hub.channelsOf(this) : [];
    if (what === 'ALL') hub.unlisten(this);
    const frames = cleanupFrames({
      statements: what === 'ALL' ? this.names.engineStatementNames() : [],
      unlisten: channels.filter((channel) => !hub.isListened(channel)),
      deallocate: what === 'ALL' ? [...this.sqlPrepared] : [],
      temp: this.tempObjects,
      engineUser: this.host.user,
      settings: what === 'ALL' ? 'reset' : 'keep',
    });
    const output = await this.proxyCall(frames);
    if (!output) return;
    this.routeOnly(output);
    this.tempObjects.length = 0;
    if (what === 'ALL') {
      this.sqlPrepared.clear();
      for (const name of [...this.names.statements]) this.names.closedStatement(name);
      this.settings.values = new Map(this.settings.startup);
    }
    // The frames ran as the engine's own user: the next unit brings the engine back to a client.
    this.host.sessionApplied = null;
    this.host.sessionOwner = null;
    this.write(Buffer.concat([commandComplete(`DISCARD ${what}`), readyForQuery(this.status)]));
    this.releaseOrIdle();
  }

  /**
   * CREATE DATABASE and DROP DATABASE: each database is served by an engine of its own, started
   * on a copy of the main one's cluster, so they run in the main database. A database clients are
   * connected to is not dropped (55006), unless WITH (FORCE) ends them first.
   */
  private async runDatabaseStatement(
    statement: DatabaseStatement,
    frames: Buffer[],
    effects: StatementEffects,
  ): Promise<void> {
    if (!this.host.main) {
      return this.refuse({
        code: '0A000',
        message: `${statement.action === 'create' ? 'CREATE' : 'DROP'} DATABASE runs in database "${this.host.front.mainDatabase}" here`,
        detail:
          "pglite-oxide serves each database from an engine of its own, made from the main database's cluster.",
      });
    }
    if (statement.action === 'drop') {
      const refusal = await this.host.front.beforeDrop(statement.name, statement.force);
      if (refusal) return this.refuse(refusal);
    }
    return this.runUnit(frames, [effects], true);
  }

  /** An Execute of a portal whose COPY already ran: Postgres refuses it as it would any run portal. */
  private refuseSpentPortal(message: FrontendMessage): Promise<void> | undefined {
    if (this.batch.length > 0) return this.thenAgain(this.runBatch(false), message);
    const portal = decodeExecute(message.body).portal;
    return this.failInEngine(`portal "${portal}" cannot be run`, '55000');
  }

  /** An error found by the proxy inside an extended batch, raised by the engine so it aborts as Postgres would. */
  private async failInEngine(message: string, code: string): Promise<void> {
    let taken = this.takeEngine(false);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    if (this.host.testTransactionOpen && !(await this.openAutocommit())) return;
    const output = await this.engineCall(Buffer.concat(errorFrames(message, true, code)));
    if (!output || !this.absorb(output, 'partial', LOAD_ACKNOWLEDGEMENTS)) return;
    this.releaseOrIdle();
  }

  /** Handles `message` again once `pending` work is done. */
  private thenAgain(pending: Promise<void> | undefined, message: FrontendMessage): Promise<void> | undefined {
    if (!pending) return this.onMessage(message);
    return pending.then(() => this.onMessage(message));
  }

  private runBatch(withSync: boolean): Promise<void> | undefined {
    const { frames, copyAt, copyPlan, effects } = this.batch.take();
    if (this.batch.hasControlSteps) {
      // They are answered at the Sync, in order, as a unit of their own.
      if (!withSync) return undefined;
      const controlSteps = this.batch.takeControlSteps();
      if (frames.length > 1) return this.refuse(replies.mixedControl);
      return this.runUnderTestTransaction(controlSteps);
    }
    if (copyPlan && copyAt >= 0) return this.startCopy(copyPlan, true, frames.slice(0, copyAt));
    return this.runUnit(frames, effects.length > 0 ? effects : null, withSync);
  }

  /** Answers a unit the engine must not see with an error, as Postgres would for that statement. */
  private async refuse(fields: Pick<ErrorFields, 'code' | 'message' | 'detail'>): Promise<void> {
    this.write(errorResponse({ severity: 'ERROR', ...fields }));
    if (this.engineBatchOpen) return this.runUnit([SYNC_FRAME], null, true);
    this.write(readyForQuery(this.status));
  }

  /** Waits for the engine; false when the wait ended without it (the client was told why). */
  private takeEngine(endsWithSync: boolean): boolean | Promise<boolean> {
    const wait = this.host.scheduler.acquire(this, this.host.limits.queueTimeoutMs);
    if (!wait) return (this.phase === 'ready' || this.releaseNow()) && this.bringMySettings();
    return this.waitForEngine(wait, endsWithSync).then((taken) => taken && this.bringMySettings());
  }

  /**
   * Brings the engine to this client's settings (statement_timeout, search_path, TimeZone, role,
   * ...), undoing those of the client before: only what differs, and nothing at all while the
   * engine stays with one client or no client has any. True once done; false when the engine failed.
   */
  private bringMySettings(): boolean | Promise<boolean> {
    const applied = this.host.sessionApplied;
    const mine = this.settings.values;
    if (applied !== null && (this.host.sessionOwner === this || (applied.size === 0 && mine.size === 0))) {
      this.host.sessionOwner = this;
      return true;
    }
    const frames = switchFrames(applied, mine, this.host.settingNames(), this.host.user);
    this.host.sessionApplied = new Map(mine);
    this.host.sessionOwner = this;
    if (!frames) return true;
    const output = this.proxyCall(frames);
    if (output instanceof Promise) return output.then((ready) => this.settingsSwitched(ready));
    return this.settingsSwitched(output);
  }

  /**
   * Reads this client's settings back from the engine after a unit changed them (by SET, RESET,
   * set_config() or a ROLLBACK), first setting again the startup values a RESET undid.
   */
  private async readMySettings(resets: readonly string[]): Promise<void> {
    const again = switchFrames(new Map(), this.settings.startupValuesReset(resets), [], this.host.user);
    const query = readSettingsQuery(this.settings.readNames());
    const output = await this.proxyCall(again ? Buffer.concat([again, query]) : query);
    if (!output) return;
    const values = settingsRead(output, this.host.user);
    if (!values) return;
    this.settings.values = values;
    if (this.host.sessionOwner === this) this.host.sessionApplied = new Map(values);
  }

  private settingsSwitched(output: Uint8Array | null): boolean {
    if (!output) return false;
    const summary = scanBackend(output);
    if (summary.errors > 0) {
      this.host.warn(`client ${this.id}: a startup setting was refused (SQLSTATE ${summary.firstErrorCode})`);
    }
    return true;
  }

  private async waitForEngine(wait: Promise<void>, endsWithSync: boolean): Promise<boolean> {
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

  private releaseNow(): false {
    // A leaving client keeps a pinned engine until its cleanup has rolled back and synced.
    this.host.scheduler.release(this, this.pinned);
    return false;
  }

  /** Runs frames on the engine as one unit and answers the client. */
  private async runUnit(
    frames: Buffer[],
    effects: StatementEffects[] | null,
    endsWithSync: boolean,
  ): Promise<void> {
    // Steps are awaited only when they have to wait: an await lets the socket's queued work run
    // before this client's reply is written, which adds several microseconds to a round trip.
    let taken = this.takeEngine(endsWithSync);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    const bytes = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    let call = this.unitCall(bytes, endsWithSync);
    if (call instanceof Promise) call = await call;
    if (!call) return;
    const summary = this.absorb(call.output, endsWithSync ? 'ready' : 'partial');
    if (!summary) return;
    let closed = this.closeAutocommit(summary, call.released);
    if (closed instanceof Promise) closed = await closed;
    if (!closed) return;
    if (effects && summary.errors === 0) await this.applyEffects(effects);
    if (this.settings.touched && summary.lastCommandTag === 'ROLLBACK') this.settingsToRead ??= [];
    if (this.settingsToRead && !this.engineBatchOpen) {
      const resets = this.settingsToRead;
      this.settingsToRead = null;
      await this.readMySettings(resets);
    }
    this.releaseOrIdle();
  }

  /**
   * A unit's call into the engine. Under a test's transaction a unit outside the client's own
   * transaction gets a savepoint, sent in the same call, with its RELEASE when the unit ends with
   * ReadyForQuery. `released` is the RELEASE's reply then. Null when the engine failed.
   */
  private unitCall(bytes: Uint8Array, endsWithSync: boolean): UnitOutput | null | Promise<UnitOutput | null> {
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

  private autocommitParts(output: Uint8Array, released: boolean): UnitOutput | null {
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
   * see its role; pg_backend_pid() is its pid); null when the engine failed (every client is told).
   */
  private engineCall(
    bytes: Uint8Array,
    blob?: Uint8Array,
    as: ClientIdentity | undefined = this.identity,
  ): Uint8Array | null | Promise<Uint8Array | null> {
    this.usedEngine = true;
    try {
      const gate = this.host.gate;
      const output = blob ? gate.execWithBlob(bytes, blob, as) : gate.exec(bytes, as);
      return output instanceof Uint8Array
        ? output
        : output.catch((error: unknown) => this.engineFailed(error));
    } catch (error) {
      return this.engineFailed(error);
    }
  }

  /** The proxy's own frames for this client (bringing its settings, undoing them): as the engine's login. */
  private proxyCall(bytes: Uint8Array): Uint8Array | null | Promise<Uint8Array | null> {
    return this.engineCall(bytes, undefined, undefined);
  }

  private engineFailed(error: unknown): null {
    this.host.engineFailed(error, this);
    return null;
  }

  /**
   * Reads the engine's output of a unit, keeps transaction status and settings, routes
   * notifications, and writes the rest to this client.
   */
  private absorb(
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
    }
    const reply = clientReply(output, summary, {
      ends: expect,
      // Under a test's outer transaction the engine always reports one; the client sees its own.
      clientStatus: this.status,
      drop,
      explainTransactionBlock: this.host.testTransactionOpen,
    });
    if (collect) collect.push(reply);
    else if (reply.length > 0) this.write(reply);
    for (const notification of summary.notifications) {
      this.host.hub.route(notification.channel, notification.payload, this.processId);
    }
    return summary;
  }

  /** Records LISTEN, UNLISTEN and SET of a unit that succeeded. */
  private async applyEffects(effects: StatementEffects[]): Promise<void> {
    const relisten: string[] = [];
    for (const effect of effects) {
      for (const channel of effect.listen) this.host.hub.listen(this, channel);
      if (effect.unlistenAll) {
        this.host.hub.unlisten(this);
        relisten.push(...this.host.hub.channels);
      } else if (effect.unlisten.length > 0) {
        this.host.hub.unlisten(this, effect.unlisten);
        relisten.push(...effect.unlisten.filter((channel) => this.host.hub.isListened(channel)));
      }
      if (effect.touchesSettings) {
        this.settings.changed(effect.settings, effect.resets);
        this.settingsToRead = [...(this.settingsToRead ?? []), ...effect.resets];
      }
      if (effect.database?.action === 'drop') await this.host.front.dropped(effect.database.name);
      for (const name of effect.prepared) this.sqlPrepared.add(name);
      this.tempObjects.push(...effect.tempObjects);
      for (const name of effect.deallocated) this.sqlPrepared.delete(name);
    }
    // The client's UNLISTEN reached the shared session; channels others still want are restored
    // in the same transaction, so they come and go with it.
    if (relisten.length > 0 && this.status !== 'E') {
      const sql = [...new Set(relisten)].map((channel) => `LISTEN ${quoteIdent(channel)}`).join('; ');
      const output = await this.engineCall(serialize.query(sql));
      if (output) this.routeOnly(output);
    }
  }

  /** Engine output of the proxy's own statements: only its notifications matter. */
  private routeOnly(output: Uint8Array): BackendSummary {
    const summary = scanBackend(output);
    if (summary.status) this.status = this.clientStatus(summary.status);
    for (const notification of summary.notifications) {
      this.host.hub.route(notification.channel, notification.payload, this.processId);
    }
    return summary;
  }

  private releaseOrIdle(): void {
    const pinned = this.pinned && this.phase === 'ready';
    this.host.scheduler.release(this, pinned);
    if (pinned) this.armIdleTimer();
  }

  private armIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.host.warn(`client ${this.id}: idle in transaction too long; rolled back and disconnected`);
      void this.fatal('25P03', 'terminating connection due to idle-in-transaction timeout');
    }, this.idleInTransactionTimeoutMs()).unref();
  }

  /** The proxy's limit, or the client's own idle_in_transaction_session_timeout when shorter. */
  private idleInTransactionTimeoutMs(): number {
    const own = durationMs(this.settings.values.get('idle_in_transaction_session_timeout'));
    const limit = this.host.limits.idleInTransactionTimeoutMs;
    return own !== null && own < limit ? own : limit;
  }

  /** Begins a COPY FROM STDIN: the engine is held while the client sends its data. */
  private async startCopy(plan: CopyInPlan, extended: boolean, before: Buffer[]): Promise<void> {
    if (!(await this.takeEngine(extended === false))) return;
    if (this.host.testTransactionOpen && !(await this.openAutocommit())) return;
    if (before.length > 0) {
      const output = await this.engineCall(Buffer.concat(before));
      if (!output) return;
      const summary = this.absorb(output, 'partial');
      if (!summary) return;
      if (summary.errors > 0) {
        // The engine now skips to the client's Sync, as Postgres would.
        this.discardUntilSync = true;
        this.releaseOrIdle();
        return;
      }
    }
    if (extended) this.engineBatchOpen = true;
    const columns = await this.copyColumns(plan, extended);
    if (columns === null) return;
    this.copy = new CopyInCollector(plan, extended, this.host.limits.maxCopyInBytes);
    this.write(copyInResponse(plan.binary, columns));
    this.armIdleTimer();
  }

  /**
   * The number of columns the COPY reads, from the engine; null when the COPY cannot start (the
   * client got the engine's error, as Postgres sends it before any CopyInResponse). The probe is
   * an extended Execute with no Sync, so it ends no transaction a client's batch has open.
   */
  private async copyColumns(plan: CopyInPlan, extended: boolean): Promise<number | null> {
    const output = await this.engineCall(copyColumnsProbe(plan));
    if (!output) return null;
    this.engineBatchOpen = true;
    const summary = scanBackend(output);
    if (summary.errors === 0 && summary.firstValue !== null) return Number(summary.firstValue);
    if (!this.absorb(output, 'partial', PROBE_REPLIES)) return null;
    if (extended) {
      this.releaseOrIdle();
      return null;
    }
    // A failed simple-protocol COPY ends with ReadyForQuery: the engine gets the Sync it waits for.
    this.discardUntilSync = false;
    await this.runUnit([SYNC_FRAME], null, true);
    return null;
  }

  private onCopyMessage(message: FrontendMessage): Promise<void> | undefined {
    const copy = this.copy!;
    switch (message.type) {
      case COPY_DATA:
        if (!copy.add(message.body)) {
          return this.finishCopy({
            code: '54000',
            message: `COPY from stdin failed: more than ${this.host.limits.maxCopyInBytes} bytes of COPY data (maxCopyInBytes)`,
          });
        }
        this.armIdleTimer();
        return undefined;
      case COPY_DONE:
        return this.finishCopy(null);
      case COPY_FAIL:
        return this.finishCopy({
          code: '57014',
          message: `COPY from stdin failed: ${cstring(message.body, 0)}`,
        });
      case FLUSH:
      case SYNC:
        // Postgres ignores these during COPY FROM STDIN: clients send them without knowing.
        this.armIdleTimer();
        return undefined;
      default: {
        // As Postgres: the COPY fails, and the connection with it (its cleanup rolls back).
        const type = message.type.toString(16).toUpperCase().padStart(2, '0');
        this.write(
          errorResponse({
            severity: 'ERROR',
            code: '08P01',
            message: `unexpected message type 0x${type} during COPY from stdin`,
          }),
        );
        void this.fatal('08P01', 'terminating connection because protocol synchronization was lost');
        return undefined;
      }
    }
  }

  private async finishCopy(failure: { code: string; message: string } | null): Promise<void> {
    clearTimeout(this.idleTimer);
    const copy = this.copy!;
    this.copy = null;
    const output = failure
      ? await this.engineCall(Buffer.concat(errorFrames(failure.message, copy.extended, failure.code)))
      : await this.engineCall(Buffer.concat(copy.loadFrames()), copy.data());
    if (!output) return;
    const summary = copy.extended
      ? this.absorb(output, 'partial', LOAD_ACKNOWLEDGEMENTS)
      : this.absorb(output, 'ready');
    if (!summary) return;
    if (!copy.extended && !(await this.closeAutocommit(summary))) return;
    if (copy.extended) {
      this.engineBatchOpen = true;
      if (summary.errors > 0) this.discardUntilSync = true;
    }
    this.releaseOrIdle();
  }

  /** The transaction status this client would get from a server of its own. */
  private clientStatus(engine: TransactionStatus): TransactionStatus {
    return this.transaction.clientStatus(engine, this.host.testTransactionOpen);
  }

  /** Isolation 'transaction': a unit outside the client's own transaction gets a savepoint. */
  private openAutocommit(): boolean | Promise<boolean> {
    const sql = this.transaction.openAutocommit(this.host.testTransactionOpen, this.engineBatchOpen);
    return sql ? this.internalSql(sql) : true;
  }

  /**
   * Ends the unit's savepoint once the unit is over: kept when it succeeded, undone when not.
   * `released` is the reply of a RELEASE already sent with the unit.
   */
  private closeAutocommit(
    summary: BackendSummary,
    released: Uint8Array | null = null,
  ): boolean | Promise<boolean> {
    const sql = this.transaction.closeAutocommit(summary.status, this.engineBatchOpen);
    if (!sql) return true;
    if (released && sql === END_AUTOCOMMIT) return this.checkInternalOutput(sql, released);
    return this.internalSql(sql);
  }

  /** SQL of the proxy's own; false when the engine failed (every client was told). */
  private internalSql(sql: string): boolean | Promise<boolean> {
    const output = this.engineCall(serialize.query(sql));
    if (output instanceof Promise) return output.then((ready) => this.checkInternalOutput(sql, ready));
    return this.checkInternalOutput(sql, output);
  }

  private checkInternalOutput(sql: string, output: Uint8Array | null): boolean {
    if (!output) return false;
    const summary = scanBackend(output);
    if (summary.errors > 0)
      this.host.warn(`client ${this.id}: ${sql} failed (SQLSTATE ${summary.firstErrorCode})`);
    return true;
  }

  /**
   * A simple Query with transaction control, under a test's outer transaction: BEGIN, COMMIT and
   * ROLLBACK become savepoints, the other statements run as they would, one at a time, and the
   * client gets the replies and transaction status a server of its own would send.
   */
  private async runUnderTestTransaction(steps: Array<Statement | Uint8Array>): Promise<void> {
    if (!(await this.takeTransactionSlot(steps))) return;
    if (!(await this.takeEngine(true))) {
      this.releaseTransactionSlot();
      return;
    }
    const replyParts: Uint8Array[] = [];
    for (const step of steps) {
      if (step instanceof Uint8Array) {
        replyParts.push(step);
        continue;
      }
      const failed = await this.runStatementUnderTest(step, replyParts);
      if (failed === null) return;
      if (failed) break;
    }
    replyParts.push(readyForQuery(this.status));
    this.write(Buffer.concat(replyParts));
    this.releaseTransactionSlot();
    this.releaseOrIdle();
  }

  /**
   * A BEGIN waits while another client of the test has a transaction of its own open: their
   * savepoints would nest into each other. False when the wait ended without it (the client was told).
   */
  private async takeTransactionSlot(steps: Array<Statement | Uint8Array>): Promise<boolean> {
    const begins = steps.some((step) => !(step instanceof Uint8Array) && step.control === 'begin');
    if (!begins || !this.host.testTransactionOpen || this.transaction.own) return true;
    const wait = this.host.transactionSlot.acquire(this, this.host.limits.queueTimeoutMs);
    if (!wait) return true;
    try {
      await wait;
      return this.phase === 'ready';
    } catch (error) {
      if (!(error instanceof EngineWaitError)) throw error;
      this.write(errorResponse({ severity: 'ERROR', code: error.sqlstate, message: error.message }));
      this.write(readyForQuery(this.status));
      return false;
    }
  }

  /** The client has no transaction of its own open (any more): another client may BEGIN. */
  private releaseTransactionSlot(): void {
    if (!this.transaction.own) this.host.transactionSlot.release(this, false);
  }

  /** One statement of such a Query; true when it failed (the rest is skipped), null when the engine did. */
  private async runStatementUnderTest(
    statement: Statement,
    replyParts: Uint8Array[],
  ): Promise<boolean | null> {
    // Between tests there is no outer transaction: transaction control runs as it is.
    if (this.host.testTransactionOpen && statement.control) {
      const step = this.transaction.control(statement.control, this.status);
      if (step.kind === 'answer') {
        replyParts.push(step.reply);
        return step.failed;
      }
      if (step.kind === 'savepoint') {
        if (!(await this.internalSql(step.sql))) return null;
        this.transaction.controlled(step.status);
        this.status = step.status;
        replyParts.push(step.reply);
        return false;
      }
    }
    const call = await this.unitCall(serialize.query(statement.sql), true);
    if (!call) return null;
    const summary = this.absorb(call.output, 'ready', READY_ONLY, replyParts);
    if (!summary) return null;
    if (!(await this.closeAutocommit(summary, call.released))) return null;
    return summary.errors > 0;
  }

  private write(bytes: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Leaves the shared session as this client found it, then forgets the client. */
  private async finish(): Promise<void> {
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    clearTimeout(this.idleTimer);
    this.login.stop();
    this.host.scheduler.cancel(this, new EngineWaitError('08006', 'the client disconnected'));
    if (this.work) await this.work.catch(() => {});
    try {
      if (wasReady && !this.engineStateLost) await this.cleanUpEngineState();
    } catch (error) {
      this.host.warn(`client ${this.id}: cleanup failed: ${errorMessage(error)}`);
    } finally {
      this.host.hub.unlisten(this);
      this.host.scheduler.forget(this, new EngineWaitError('08006', 'the client disconnected'));
      this.host.transactionSlot.forget(this, new EngineWaitError('08006', 'the client disconnected'));
      if (!this.socket.destroyed) this.socket.destroySoon();
      this.host.sessionLeft(this);
    }
  }

  private async cleanUpEngineState(): Promise<void> {
    const hub = this.host.hub;
    const channels = hub.channelsOf(this);
    hub.unlisten(this);
    const holds = this.host.scheduler.holder === this;
    if (!holds && !this.usedEngine) return;
    if (!holds) {
      const wait = this.host.scheduler.acquire(this, this.host.limits.queueTimeoutMs);
      if (wait) await wait;
    }
    try {
      if (this.engineBatchOpen) {
        const output = await this.host.gate.exec(SYNC_FRAME);
        this.routeOnly(output);
        this.engineBatchOpen = false;
      }
      if (this.transaction.own && this.host.testTransactionOpen)
        this.host.leftInsideTransaction.push(`${this.describe()}, then disconnected`);
      const rollback = this.transaction.rollbackOnLeave(this.status);
      if (rollback) this.routeOnly(await this.host.gate.exec(serialize.query(rollback)));
      const others = this.host.otherClients(this);
      const frames = cleanupFrames({
        statements: this.names.engineStatementNames(),
        unlisten: others.length === 0 ? 'all' : channels.filter((channel) => !hub.isListened(channel)),
        deallocate: others.length === 0 ? 'all' : [...this.sqlPrepared],
        temp: others.length === 0 ? 'all' : this.tempObjects,
        engineUser: this.host.user,
        settings: 'reset',
      });
      this.routeOnly(await this.host.gate.exec(frames));
      // The cleanup put every setting back to the engine's defaults: the next client sets its own.
      this.host.sessionApplied = new Map();
      this.host.sessionOwner = null;
    } finally {
      this.host.scheduler.release(this, false);
    }
  }
}

const READY_ONLY: ReadonlySet<number> = new Set([READY_FOR_QUERY]);

/** What a unit's engine call gave: its own output, and the reply of a RELEASE sent with it. */
interface UnitOutput {
  output: Uint8Array;
  released: Uint8Array | null;
}
/** Replies to the column probe of a COPY that the client did not ask for; its error passes. */
const PROBE_REPLIES: ReadonlySet<number> = new Set([0x31, 0x32, 0x54, 0x44, 0x43]);

/** A statement as an error message quotes it: one line, 60 characters at most. */
function brief(sql: string): string {
  const line = sql.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}
