import {
  BIND_COMPLETE,
  CLOSE_COMPLETE,
  NO_DATA,
  NO_PARAMETERS,
  PARSE_COMPLETE,
} from '../../protocol/backend-writer.js';
import {
  BIND,
  CLOSE,
  DESCRIBE,
  decodeBind,
  decodeExecute,
  decodeParse,
  decodeTarget,
  EXECUTE,
  encodeWithNames,
  PARSE,
} from '../../protocol/extended-messages.js';
import type { FrontendMessage } from '../../protocol/frontend-reader.js';
import type { SqlDialect } from '../../protocol/sql-lexer.js';
import { type CopyInPlan, type StatementEffects, statementEffects } from '../sql/statement-effects.js';
import { type Statement, transactionControlOf } from '../sql/test-transaction.js';
import type { StatementNames } from './statement-names.js';

/** How much of a statement is kept to quote in another client's error. */
export const STATEMENT_QUOTE_BYTES = 200;

/** A client's extended messages gathered for one call into the engine, as the batch hands them over. */
export interface TakenBatch {
  /** The messages as the engine gets them: statement and portal names made the engine's. */
  frames: Buffer[];
  /** Where an Execute of a COPY FROM STDIN portal is among them, and its plan; -1 and null when none. */
  copyAt: number;
  copyPlan: CopyInPlan | null;
  /** What the batch's parsed statements do to the session, for after it succeeds. */
  effects: StatementEffects[];
  /** The names of the statements it parses, in order ('' for the unnamed one). */
  parsed: string[];
}

/**
 * A client's extended-protocol messages (Parse, Bind, Describe, Close, Execute) gathered until its
 * Sync or Flush, with the client's statement and portal names replaced by its engine names. Under
 * test transactions, messages about transaction control are set apart as steps the proxy answers
 * itself (they must not reach the engine, where a COMMIT would end the test's transaction).
 */
export class ExtendedBatch {
  private frames: Buffer[] = [];
  private copyAt = -1;
  private copyPlan: CopyInPlan | null = null;
  private effects: StatementEffects[] = [];
  private parsed: string[] = [];
  private controlSteps: Array<Statement | Uint8Array> = [];
  /** Bytes gathered; a big batch is sent on before its Sync. */
  bytes = 0;

  constructor(private readonly names: StatementNames) {}

  get length(): number {
    return this.frames.length;
  }

  /** An Execute of a COPY FROM STDIN is gathered: the client waits for CopyInResponse now. */
  get startsCopy(): boolean {
    return this.copyAt >= 0;
  }

  /**
   * Adds one message. Returns the start of the statement's SQL when the message is a Parse (to
   * name the client's last statement), otherwise null.
   */
  add(message: FrontendMessage, dialect: SqlDialect, testTransactions: boolean): string | null {
    if (testTransactions && this.addControlStep(message)) return null;
    const { type, body } = message;
    let frame = message.frame;
    let statement: string | null = null;
    if (type === PARSE) {
      const parse = decodeParse(body);
      const sql = body.toString('utf8', parse.sqlStart, parse.sqlEnd);
      statement = body.toString(
        'utf8',
        parse.sqlStart,
        Math.min(parse.sqlEnd, parse.sqlStart + STATEMENT_QUOTE_BYTES),
      );
      const effects = statementEffects(sql, dialect);
      // A refusal (several statements with a COPY FROM STDIN) is the engine's to make here: it
      // refuses several statements in one Parse.
      if (effects) this.effects.push(effects);
      this.parsed.push(parse.name);
      this.names.parsed(parse.name, effects?.copyIn ?? null, null, frame);
    } else if (type === BIND) {
      const bind = decodeBind(body);
      this.names.bound(bind.portal, bind.statement);
      if (bind.portal !== '') {
        frame = encodeWithNames(
          type,
          null,
          [this.names.enginePortalName(bind.portal), bind.statement],
          body.subarray(bind.restStart),
        );
      }
    } else if (type === DESCRIBE || type === CLOSE) {
      const target = decodeTarget(body);
      if (type === CLOSE) {
        if (target.kind === 'S') this.names.closedStatement(target.name);
        else this.names.closedPortal(target.name);
      }
      if (target.kind === 'P' && target.name !== '') {
        const name = this.names.enginePortalName(target.name);
        frame = encodeWithNames(type, body.subarray(0, 1), [name], Buffer.alloc(0));
      }
    } else if (type === EXECUTE) {
      const execute = decodeExecute(body);
      const plan = this.names.executeCopyPortal(execute.portal);
      if (plan && this.copyAt < 0) {
        this.copyAt = this.frames.length;
        this.copyPlan = plan;
      }
      if (execute.portal !== '') {
        frame = encodeWithNames(
          type,
          null,
          [this.names.enginePortalName(execute.portal)],
          body.subarray(body.length - 4),
        );
      }
    }
    this.push(frame);
    return statement;
  }

  /** Adds a frame as it is (the client's Sync). */
  push(frame: Buffer): void {
    this.frames.push(frame);
    this.bytes += frame.length;
  }

  /** Hands over what was gathered, and starts again. Transaction-control steps stay (see takeControlSteps). */
  take(): TakenBatch {
    const taken = {
      frames: this.frames,
      copyAt: this.copyAt,
      copyPlan: this.copyPlan,
      effects: this.effects,
      parsed: this.parsed,
    };
    this.frames = [];
    this.parsed = [];
    this.bytes = 0;
    this.copyAt = -1;
    this.copyPlan = null;
    this.effects = [];
    return taken;
  }

  /** Transaction-control steps gathered so far: replies to send and statements to run as control. */
  get hasControlSteps(): boolean {
    return this.controlSteps.length > 0;
  }

  takeControlSteps(): Array<Statement | Uint8Array> {
    const steps = this.controlSteps;
    this.controlSteps = [];
    return steps;
  }

  /** Returns whether `message` is transaction control, set apart as a step. */
  private addControlStep(message: FrontendMessage): boolean {
    const { type, body } = message;
    if (type === PARSE) {
      const parse = decodeParse(body);
      const sql = body.toString('utf8', parse.sqlStart, parse.sqlEnd);
      const control = transactionControlOf(sql);
      if (!control) return false;
      this.names.parsed(parse.name, null, { sql, control });
      this.controlSteps.push(PARSE_COMPLETE);
    } else if (type === BIND) {
      const bind = decodeBind(body);
      if (!this.names.controlStatement(bind.statement)) return false;
      this.names.bound(bind.portal, bind.statement);
      this.controlSteps.push(BIND_COMPLETE);
    } else if (type === DESCRIBE || type === CLOSE) {
      const target = decodeTarget(body);
      const isControl =
        target.kind === 'S'
          ? this.names.controlStatement(target.name)
          : this.names.controlPortal(target.name);
      if (!isControl) return false;
      if (type === DESCRIBE) {
        this.controlSteps.push(target.kind === 'S' ? Buffer.concat([NO_PARAMETERS, NO_DATA]) : NO_DATA);
      } else {
        if (target.kind === 'S') this.names.closedStatement(target.name);
        else this.names.closedPortal(target.name);
        this.controlSteps.push(CLOSE_COMPLETE);
      }
    } else if (type === EXECUTE) {
      const statement = this.names.controlPortal(decodeExecute(body).portal);
      if (!statement) return false;
      this.controlSteps.push(statement);
    } else {
      return false;
    }
    return true;
  }
}
