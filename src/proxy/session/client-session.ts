import type { Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { errorMessage, ProtocolViolationError } from '../../errors.js';
import { errorResponse, readyForQuery } from '../../protocol/backend-writer.js';
import {
  BIND,
  CLOSE,
  COPY_DATA,
  COPY_DONE,
  COPY_FAIL,
  checkEmpty,
  checkFunctionCall,
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
import { splitStatements } from '../../protocol/sql-lexer.js';
import { ENGINE_ROLE } from '../../runtime/engine-identity.js';
import { EngineWaitError } from '../database/engine-scheduler.js';
import type { EngineResetState, ServedDatabase, StatementError } from '../database/served-database.js';
import { type Admission, ClientLogin, type LoginConnection } from '../login/client-login.js';
import { welcomeMessages } from '../login/startup.js';
import { statementEffects } from '../sql/statement-effects.js';
import { replies, statementsWithControl } from '../sql/test-transaction.js';
import { SYNC_FRAME } from './engine-turns.js';
import { ExtendedBatch, STATEMENT_QUOTE_BYTES } from './extended-batch.js';
import { cleanupFrames, ownObjectsClosed } from './session-cleanup.js';
import { SessionStatements } from './session-statements.js';

/** An unfinished extended batch is sent on to the engine once it is this big. */
const BATCH_FLUSH_BYTES = 1024 * 1024;

/**
 * One client connection: its startup, its messages grouped into units of work, and what it
 * leaves behind in the shared engine session when it goes.
 */
export class ClientSession extends SessionStatements {
  readonly secretKey: number;
  private readonly login: ClientLogin;
  private readonly reader: FrontendReader;
  private readonly batch: ExtendedBatch;
  /** The start of the client's last statement, for other clients' errors. */
  private lastStatement = '';
  private pumping = false;
  private work: Promise<void> | null = null;
  private paused = false;
  private leaving: Promise<void> | null = null;
  /** The engine session this client used is gone (restarted or closing): nothing to clean up. */
  private engineStateLost = false;
  constructor(socket: Socket, host: ServedDatabase, id: number) {
    super(socket, host, id);
    this.secretKey = (Math.random() * 0x7fffffff) | 0;
    this.reader = new FrontendReader({
      maxStartupBytes: 10_000,
      maxMessageBytes: host.limits.maxMessageBytes,
    });
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

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** The role and database a logged-in client counts against (connection limits). */
  get loggedIn(): { role: string; database: string } | null {
    return this.phase === 'ready' ? { role: this.loginRole.name, database: this.host.database } : null;
  }

  /** Isolation 'transaction': the client is inside a transaction of its own. */
  get inOwnTransaction(): boolean {
    return this.transaction.own;
  }

  /** This client as another client's error names it: who, in which state, doing what. */
  describe(): string {
    const named = this.applicationName ? `, application_name "${this.applicationName}"` : '';
    const who = `client ${this.processId} (user "${this.loginRole.name}"${named})`;
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
  abandon(code: string, message: string, cancelled?: StatementError): Promise<void> {
    this.engineStateLost = true;
    if (cancelled && this.phase === 'ready' && this.socket.writable)
      this.write(errorResponse({ severity: 'ERROR', ...cancelled }));
    return this.fatal(code, message);
  }

  /**
   * The engine was put back to an earlier state: what this client made in it is gone. Returns
   * the Parse of each of its named statements, for the proxy to prepare them again.
   */
  engineReset(): EngineResetState {
    this.tempObjects.length = 0;
    return {
      parses: this.names.openStatementParses(),
      channels: this.host.hub.channelsOf(this),
      as: this.identity,
    };
  }

  /** The test's outer transaction ended: whatever this client had open inside it went with it. */
  testTransactionEnded(): void {
    this.host.transactionSlot.release(this, false);
    this.transaction.forget();
    this.status = 'I';
    this.stopIdleTimer();
  }

  /** A CancelRequest named this client: its running statement is asked to stop, or its wait ends. */
  cancelRequested(): void {
    if (this.host.scheduler.holder === this) this.host.cancelRunning();
    else this.cancelWait();
  }

  /** Ends a queued wait of this client for the engine (CancelRequest). */
  cancelWait(): void {
    const cancelled = new EngineWaitError('57014', 'canceling statement due to user request');
    if (!this.host.front.lockWaits.cancel(this, cancelled)) this.host.scheduler.cancel(this, cancelled);
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
    // A superuser's login checks as the engine's own: the engine then needs no change for it.
    this.identity = { role: role.superuser ? ENGINE_ROLE : role.oid, pid: this.processId };
    this.loginRole = { name: role.name, superuser: role.superuser };
    this.tableEntry = this.host.front.clients.add({ pid: this.processId, role: role.oid });
    const tcp = this.socket.remoteAddress !== undefined;
    this.tableEntry?.activity.loggedIn({
      user: role.name,
      database: this.host.database,
      applicationName: this.applicationName,
      address: tcp ? (this.socket.remoteAddress ?? null) : null,
      port: tcp ? (this.socket.remotePort ?? 0) : -1,
    });
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
    this.stopIdleTimer();
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
    const sql = message.body.toString('utf8', 0, sqlEnd);
    this.lastStatement = message.body.toString('utf8', 0, Math.min(sqlEnd, STATEMENT_QUOTE_BYTES));
    const frames = [message.frame];
    const effects = statementEffects(sql, this.dialect);
    if (effects?.refusal) return this.refuse(effects.refusal);
    // DISCARD TEMP reaches only this client's temporary schema, but in a test's outer transaction.
    const discard = effects?.discard === 'TEMP' && !this.host.testTransactionOpen ? null : effects?.discard;
    // DISCARD ALL also ends the client's advisory locks, which the engine's own does not know.
    if (discard && this.status === 'I' && (discard === 'ALL' || this.host.otherClients(this).length > 0)) {
      return this.discardMine(discard, sql);
    }
    if (effects && effects.tempObjects.length > 0 && this.host.testTransactionOpen) {
      const clash = this.tempClash(effects.tempObjects);
      if (clash) return this.refuse(clash);
    }
    if (effects?.database) {
      const statements = splitStatements(sql, this.dialect).length;
      return this.runDatabaseStatement(effects.database, frames, effects, { statements, prepared: null });
    }
    if (this.host.testTransactionOpen) {
      const statements = statementsWithControl(sql, this.dialect);
      if (statements) return this.runUnderTestTransaction(statements);
    }
    if (effects?.copyIn) return this.startCopy(effects.copyIn, false, []);
    return this.runUnit(frames, effects ? [effects] : null, true);
  }

  /** An Execute of a portal whose COPY already ran: Postgres refuses it as it would any run portal. */
  private refuseSpentPortal(message: FrontendMessage): Promise<void> | undefined {
    if (this.batch.length > 0) return this.thenAgain(this.runBatch(false), message);
    const portal = decodeExecute(message.body).portal;
    return this.failInEngine(`portal "${portal}" cannot be run`, '55000');
  }

  /** Handles `message` again once `pending` work is done. */
  private thenAgain(pending: Promise<void> | undefined, message: FrontendMessage): Promise<void> | undefined {
    if (!pending) return this.onMessage(message);
    return pending.then(() => this.onMessage(message));
  }

  private runBatch(withSync: boolean): Promise<void> | undefined {
    const { frames, copyAt, copyPlan, effects, parsed } = this.batch.take();
    if (this.batch.hasControlSteps) {
      // They are answered at the Sync, in order, as a unit of their own.
      if (!withSync) return undefined;
      const controlSteps = this.batch.takeControlSteps();
      if (frames.length > 1) return this.refuse(replies.mixedControl);
      return this.runUnderTestTransaction(controlSteps);
    }
    if (copyPlan && copyAt >= 0) return this.startCopy(copyPlan, true, frames.slice(0, copyAt));
    // CREATE, DROP or RENAME of a DATABASE parsed and run in one go (postgres.js, Prisma): as a Query's.
    const [only] = effects;
    if (withSync && only?.database && effects.length === 1 && parsed.length === 1 && !this.engineBatchOpen) {
      return this.runDatabaseStatement(only.database, frames, only, { statements: 1, prepared: parsed[0]! });
    }
    return this.runUnit(frames, effects.length > 0 ? effects : null, withSync);
  }

  /** Leaves the shared session as this client found it, then forgets the client. */
  private async finish(): Promise<void> {
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.stopIdleTimer();
    this.login.stop();
    const disconnected = new EngineWaitError('08006', 'the client disconnected');
    this.host.front.lockWaits.cancel(this, disconnected);
    this.host.scheduler.cancel(this, disconnected);
    // A statement it left running is cancelled, as a server's backend ends with its client.
    if (this.work && this.host.scheduler.holder === this) this.host.cancelRunning();
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
    this.host.hub.unlisten(this);
    const holds = this.host.scheduler.holder === this;
    if (!holds && !this.usedEngine) return;
    if (!holds) {
      const wait = this.host.scheduler.acquire(this, this.host.limits.queueTimeoutMs);
      if (wait) await wait;
    }
    try {
      // What ends the client's own work runs as the client: its transaction's cursors are its own.
      const gate = this.host.gate;
      if (this.engineBatchOpen) {
        const output = await gate.exec(SYNC_FRAME, this.identity);
        this.routeOnly(output);
        this.engineBatchOpen = false;
      }
      if (this.transaction.own && this.host.testTransactionOpen)
        this.host.leftInsideTransaction.push(`${this.describe()}, then disconnected`);
      const rollback = this.transaction.rollbackOnLeave(this.status);
      const closed = ownObjectsClosed(!this.host.testTransactionOpen);
      const own = rollback ? Buffer.concat([serialize.query(rollback), closed]) : closed;
      this.routeOnly(await gate.exec(own, this.identity));
      const others = this.host.otherClients(this);
      const frames = cleanupFrames({
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

/** A statement as an error message quotes it: one line, 60 characters at most. */
function brief(sql: string): string {
  const line = sql.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}
