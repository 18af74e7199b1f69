import { serialize } from 'pg-protocol';
import { scanBackend } from '../../protocol/backend-scanner.js';
import {
  commandComplete,
  copyInResponse,
  type ErrorFields,
  errorResponse,
  readyForQuery,
} from '../../protocol/backend-writer.js';
import { COPY_DATA, COPY_DONE, COPY_FAIL, cstring, FLUSH, SYNC } from '../../protocol/extended-messages.js';
import type { FrontendMessage } from '../../protocol/frontend-reader.js';
import { splitStatements } from '../../protocol/sql-lexer.js';
import { EngineWaitError } from '../database/engine-scheduler.js';
import type {
  CopyInPlan,
  DatabaseStatement,
  StatementEffects,
  TempObject,
} from '../sql/statement-effects.js';
import type { Statement } from '../sql/test-transaction.js';
import { CopyInCollector, copyColumnsProbe, errorFrames, LOAD_ACKNOWLEDGEMENTS } from './copy-in.js';
import { EngineTurns, SYNC_FRAME } from './engine-turns.js';
import { cleanupFrames, ownObjectsClosed } from './session-cleanup.js';

const READY_FOR_QUERY = 0x5a;

/**
 * What a client's statements need beyond a plain unit of work in the shared engine session: its
 * own objects there (DEALLOCATE ALL, DISCARD, temporary names, CREATE and DROP DATABASE), COPY
 * FROM STDIN, and transaction control under a test's transaction.
 */
export abstract class SessionStatements extends EngineTurns {
  /** Whether this client made a temporary object of that name, and has not left. */
  hasTemp(name: string): boolean {
    return this.tempObjects.some((object) => object.name === name);
  }

  /**
   * In a test's outer transaction the clients share the session's temporary schema: a name
   * another connected client made there cannot be made again until it leaves. PostgreSQL's error,
   * saying why.
   */
  protected tempClash(
    objects: readonly TempObject[],
  ): Pick<ErrorFields, 'code' | 'message' | 'detail'> | null {
    for (const { name } of objects) {
      const owner = this.host.otherClients(this).find((other) => other.hasTemp(name));
      if (!owner) continue;
      return {
        code: '42P07',
        message: `relation "${name}" already exists`,
        detail:
          `Client ${owner.processId} made a temporary object of that name and is still connected: pglite-oxide ` +
          "serves a test's clients inside one outer transaction, whose temporary schema they share. " +
          'Use another name, or end that connection first.',
      };
    }
    return null;
  }

  /**
   * DISCARD ALL and DISCARD TEMP while other clients are connected: the engine would discard their
   * state too. The proxy discards this client's own (its temporary objects; for ALL also its
   * prepared statements, cursors, channels and settings) and answers as the server would.
   */
  protected async discardMine(what: 'ALL' | 'TEMP', sql: string): Promise<void> {
    if (splitStatements(sql, this.dialect).length > 1) {
      return this.refuse({
        code: '0A000',
        message: `DISCARD ${what} must be the only statement of its query when other clients are connected`,
      });
    }
    let taken = this.takeEngine(true);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    if (what === 'ALL') {
      const closed = await this.engineCall(ownObjectsClosed(!this.host.testTransactionOpen));
      if (!closed) return;
      this.routeOnly(closed);
    }
    // Its channels went with its own objects (UNLISTEN *, as the client).
    if (what === 'ALL') this.host.hub.unlisten(this);
    const frames = cleanupFrames({
      temp: this.tempObjects,
      engineUser: this.host.user,
      settings: what === 'ALL' ? 'reset' : 'keep',
    });
    // As the client: its own temporary schema is the one pg_temp names.
    const output = await this.engineCall(frames);
    if (!output) return;
    this.routeOnly(output);
    this.tempObjects.length = 0;
    if (what === 'ALL') {
      for (const name of [...this.names.statements]) this.names.closedStatement(name);
      this.settings.values = new Map(this.settings.startup);
    }
    // The frames left the engine at its own user: the next unit brings it back to a client.
    this.host.sessionApplied = null;
    this.host.sessionOwner = null;
    this.write(Buffer.concat([commandComplete(`DISCARD ${what}`), readyForQuery(this.status)]));
    this.releaseOrIdle();
  }

  /**
   * CREATE, DROP and ALTER ... RENAME of a DATABASE, from any database. Each database is served
   * by an engine of its own, on a cluster of its own: CREATE DATABASE runs in the engine of the
   * database it copies (its template), as the client, so PostgreSQL copies that database as it is
   * now and makes its checks; the new database's cluster is then copied from there. A database
   * clients are connected to is not copied, dropped or renamed (55006), unless DROP ... WITH
   * (FORCE) ends them. What a drop or rename leaves to do (engines, files) follows the cluster's
   * list of databases (see ProxyServer.databasesChanged), whichever way the SQL came.
   */
  protected async runDatabaseStatement(
    statement: DatabaseStatement,
    frames: Buffer[],
    effects: StatementEffects,
    /**
     * How many statements the client's SQL holds, and the name of the statement the client's
     * extended messages parsed it as (null for a Query).
     */
    sent: { statements: number; prepared: string | null },
  ): Promise<void> {
    const front = this.host.front;
    if (statement.action !== 'create') {
      // Its own database: this client's engine refuses it, as PostgreSQL does.
      const refusal =
        statement.name === this.host.database
          ? null
          : await front.whenUnused(statement.name, statement.force);
      if (refusal) return this.refuse(refusal);
      return this.runUnit(frames, [effects], true);
    }
    // Where PostgreSQL refuses it (inside a transaction block, or the role may not create or copy
    // it), this client's engine says so, before any wait for the template.
    const alone =
      this.status === 'I' &&
      !this.host.testTransactionOpen &&
      sent.statements === 1 &&
      this.mayCopy(statement.template ?? 'template1');
    const source = alone ? await front.templateSource(statement.template ?? 'template1', this) : null;
    if (source === null) return this.runUnit(frames, [effects], true);
    if ('code' in source) return this.refuse(source);
    let output: Uint8Array;
    try {
      output = await source.whileHeld(async () => {
        await source.syncCatalogs();
        const answer = await source.runForVisitor(Buffer.concat(frames), {
          identity: this.identity,
          settings: this.settings.values,
        });
        // Its prepared statement stays in this client's engine only, as its name says.
        if (sent.prepared)
          await source.gate.exec(
            Buffer.concat([serialize.close({ type: 'S', name: sent.prepared }), SYNC_FRAME]),
            this.identity,
          );
        if (scanBackend(answer).errors === 0) {
          await front.copyCreated(source, statement.name);
          // The new database is listed in the cluster before the client hears it was made.
          await source.syncCatalogs();
        }
        return answer;
      });
    } catch (error) {
      return this.refuse({
        code: error instanceof EngineWaitError ? error.sqlstate : 'XX000',
        message: `CREATE DATABASE failed: ${(error as Error).message}`,
      });
    }
    this.routeOnly(output);
    this.write(output);
  }

  /**
   * Whether this client's role may create a database from `template`, as far as the proxy can
   * tell without the engine: CREATEDB, and the template marked as one or owned by the role. When
   * it cannot tell (ownership through a membership), the template's engine decides.
   */
  private mayCopy(template: string): boolean {
    if (this.loginRole.superuser) return true;
    const role = this.host.knownRole(this.loginRole.name);
    const source = this.host.front.cluster.databases.get(template);
    if (!role?.createdb) return false;
    return !source || source.isTemplate || source.owner === role.oid;
  }

  /** An error found by the proxy inside an extended batch, raised by the engine so it aborts as Postgres would. */
  protected async failInEngine(message: string, code: string): Promise<void> {
    let taken = this.takeEngine(false);
    if (taken instanceof Promise) taken = await taken;
    if (!taken) return;
    if (this.host.testTransactionOpen && !(await this.openAutocommit())) return;
    const output = await this.engineCall(Buffer.concat(errorFrames(message, true, code)));
    if (!output || !this.absorb(output, 'partial', LOAD_ACKNOWLEDGEMENTS)) return;
    return this.releaseOrIdle();
  }

  /** Begins a COPY FROM STDIN: the engine is held while the client sends its data. */
  protected async startCopy(plan: CopyInPlan, extended: boolean, before: Buffer[]): Promise<void> {
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
        return this.releaseOrIdle();
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
  protected async copyColumns(plan: CopyInPlan, extended: boolean): Promise<number | null> {
    const output = await this.engineCall(copyColumnsProbe(plan));
    if (!output) return null;
    this.engineBatchOpen = true;
    const summary = scanBackend(output);
    if (summary.errors === 0 && summary.firstValue !== null) return Number(summary.firstValue);
    if (!this.absorb(output, 'partial', PROBE_REPLIES)) return null;
    if (extended) {
      await this.releaseOrIdle();
      return null;
    }
    // A failed simple-protocol COPY ends with ReadyForQuery: the engine gets the Sync it waits for.
    this.discardUntilSync = false;
    await this.runUnit([SYNC_FRAME], null, true);
    return null;
  }

  protected onCopyMessage(message: FrontendMessage): Promise<void> | undefined {
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

  protected async finishCopy(failure: { code: string; message: string } | null): Promise<void> {
    this.stopIdleTimer();
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
    return this.releaseOrIdle();
  }

  /**
   * A simple Query with transaction control, under a test's outer transaction: BEGIN, COMMIT and
   * ROLLBACK become savepoints, the other statements run as they would, one at a time, and the
   * client gets the replies and transaction status a server of its own would send.
   */
  protected async runUnderTestTransaction(steps: Array<Statement | Uint8Array>): Promise<void> {
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
  protected async takeTransactionSlot(steps: Array<Statement | Uint8Array>): Promise<boolean> {
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
  protected releaseTransactionSlot(): void {
    if (!this.transaction.own) this.host.transactionSlot.release(this, false);
  }

  /** One statement of such a Query; true when it failed (the rest is skipped), null when the engine did. */
  protected async runStatementUnderTest(
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
}

const READY_ONLY: ReadonlySet<number> = new Set([READY_FOR_QUERY]);

/** Replies to the column probe of a COPY that the client did not ask for; its error passes. */
const PROBE_REPLIES: ReadonlySet<number> = new Set([0x31, 0x32, 0x54, 0x44, 0x43]);
