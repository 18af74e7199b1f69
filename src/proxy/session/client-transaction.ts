import { serialize } from 'pg-protocol';
import { commandComplete, type TransactionStatus } from '../../protocol/backend-writer.js';
import {
  BEGIN_AUTOCOMMIT,
  BEGIN_CLIENT_TRANSACTION,
  COMMIT_CLIENT_TRANSACTION,
  END_AUTOCOMMIT,
  ROLLBACK_CLIENT_TRANSACTION,
  replies,
  type TransactionControl,
  UNDO_AUTOCOMMIT,
} from '../sql/test-transaction.js';

/** What a client's transaction-control statement comes to under a test's transaction. */
export type ControlStep =
  /** Answered by the proxy alone; `failed` skips the rest of the client's Query, as an error does. */
  | { kind: 'answer'; reply: Buffer; failed: boolean }
  /** The proxy runs `sql` (a savepoint), then the client is in `status` and gets `reply`. */
  | { kind: 'savepoint'; sql: string; reply: Buffer; status: TransactionStatus }
  /** The statement runs on the engine as it is (a savepoint of the client's inside its own transaction). */
  | { kind: 'run' };

const OPEN_AUTOCOMMIT_FRAME = serialize.query(BEGIN_AUTOCOMMIT);
const END_AUTOCOMMIT_FRAME = serialize.query(END_AUTOCOMMIT);
const READY_FOR_QUERY = 0x5a;
const COMMAND_COMPLETE = 0x43;
const ERROR_RESPONSE = 0x45;

/** The engine output of a unit sent with `withAutocommit`, cut into its three replies. */
export interface AutocommitOutput {
  savepoint: Uint8Array;
  unit: Uint8Array;
  /** The RELEASE's reply: an error when the unit failed (the transaction is aborted then). */
  release: Uint8Array | null;
}

/**
 * A unit with its autocommit savepoint in front and, for a unit that ends with ReadyForQuery, the
 * savepoint's RELEASE behind it: one engine call instead of three. A failed unit leaves the
 * RELEASE failing too; the savepoint is then undone by a call of its own.
 */
export function withAutocommit(unit: Uint8Array, release: boolean): Buffer {
  return Buffer.concat(
    release ? [OPEN_AUTOCOMMIT_FRAME, unit, END_AUTOCOMMIT_FRAME] : [OPEN_AUTOCOMMIT_FRAME, unit],
  );
}

/**
 * Cuts the output of `withAutocommit`: the savepoint's reply ends at the first ReadyForQuery; the
 * RELEASE's is the last two messages (CommandComplete or ErrorResponse, then ReadyForQuery). Null
 * when the output does not have that shape.
 */
export function splitAutocommitOutput(output: Uint8Array, release: boolean): AutocommitOutput | null {
  const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
  let savepointEnd = -1;
  let previous = -1;
  let last = -1;
  for (let offset = 0; offset < output.length; ) {
    if (output.length - offset < 5) return null;
    const end = offset + 1 + view.getInt32(offset + 1);
    if (end <= offset + 4 || end > output.length) return null;
    if (savepointEnd < 0 && output[offset] === READY_FOR_QUERY) savepointEnd = end;
    previous = last;
    last = offset;
    offset = end;
  }
  if (savepointEnd < 0) return null;
  if (!release)
    return {
      savepoint: output.subarray(0, savepointEnd),
      unit: output.subarray(savepointEnd),
      release: null,
    };
  const closing = output[previous];
  if (previous <= savepointEnd || output[last] !== READY_FOR_QUERY) return null;
  if (closing !== COMMAND_COMPLETE && closing !== ERROR_RESPONSE) return null;
  return {
    savepoint: output.subarray(0, savepointEnd),
    unit: output.subarray(savepointEnd, previous),
    release: output.subarray(previous),
  };
}

const SAVEPOINT_STATEMENTS = {
  savepoint: 'SAVEPOINT',
  release: 'RELEASE SAVEPOINT',
  'rollback-to': 'ROLLBACK TO SAVEPOINT',
} as const;

/**
 * One client's transactions under a test's outer transaction (isolation 'transaction'). Its
 * BEGIN, COMMIT and ROLLBACK become a savepoint in the test's transaction, and each unit it runs
 * outside a transaction of its own gets a savepoint too, so a failed statement undoes only itself.
 * This class decides which SQL runs and what the client is told; the session runs it.
 */
export class ClientTransaction {
  /** The client is inside a transaction of its own. */
  own = false;
  /** The savepoint around the client's current autocommit unit is open. */
  private autocommitOpen = false;

  /** The transaction status the client would have on a server of its own. */
  clientStatus(engine: TransactionStatus, testOpen: boolean): TransactionStatus {
    return testOpen && !this.own ? 'I' : engine;
  }

  /** The savepoint to open before a unit; null when none is due (in a batch, or in its own transaction). */
  openAutocommit(testOpen: boolean, batchOpen: boolean): string | null {
    if (!testOpen || this.own || this.autocommitOpen || batchOpen) return null;
    this.autocommitOpen = true;
    return BEGIN_AUTOCOMMIT;
  }

  /**
   * How the unit's savepoint ends once the unit is over (`status` null: it is not over): kept
   * when it succeeded, undone when not. Null when there is none to end.
   */
  closeAutocommit(status: TransactionStatus | null, batchOpen: boolean): string | null {
    if (!this.autocommitOpen || status === null || batchOpen) return null;
    this.autocommitOpen = false;
    return status === 'E' ? UNDO_AUTOCOMMIT : END_AUTOCOMMIT;
  }

  /** A transaction-control statement of the client, in transaction status `status`. */
  control(control: TransactionControl, status: TransactionStatus): ControlStep {
    switch (control) {
      case 'begin':
        if (this.own) return { kind: 'answer', reply: replies.alreadyInTransaction(), failed: false };
        return {
          kind: 'savepoint',
          sql: BEGIN_CLIENT_TRANSACTION,
          reply: commandComplete('BEGIN'),
          status: 'T',
        };
      case 'commit':
      case 'rollback': {
        const tag = control === 'commit' ? 'COMMIT' : 'ROLLBACK';
        if (!this.own) return { kind: 'answer', reply: replies.noTransaction(tag), failed: false };
        // COMMIT of a failed transaction rolls it back, and says so.
        const commits = control === 'commit' && status !== 'E';
        return {
          kind: 'savepoint',
          sql: commits ? COMMIT_CLIENT_TRANSACTION : ROLLBACK_CLIENT_TRANSACTION,
          reply: commandComplete(commits ? 'COMMIT' : 'ROLLBACK'),
          status: 'I',
        };
      }
      case 'unsupported':
        return { kind: 'answer', reply: replies.unsupported(), failed: true };
      default:
        if (this.own) return { kind: 'run' };
        return {
          kind: 'answer',
          reply: replies.outsideTransactionBlock(SAVEPOINT_STATEMENTS[control]),
          failed: true,
        };
    }
  }

  /** The savepoint of a control step ran: the client is in or out of its own transaction. */
  controlled(status: TransactionStatus): void {
    this.own = status !== 'I';
  }

  /**
   * The client leaves: what undoes what it left open (its transaction, its unit's savepoint, or
   * a plain transaction outside a test), or null when nothing is open. Forgets both.
   */
  rollbackOnLeave(status: TransactionStatus): string | null {
    const rollback = this.own
      ? ROLLBACK_CLIENT_TRANSACTION
      : this.autocommitOpen
        ? UNDO_AUTOCOMMIT
        : status !== 'I'
          ? 'ROLLBACK'
          : null;
    this.forget();
    return rollback;
  }

  /** The test's outer transaction ended, and everything the client had open inside it. */
  forget(): void {
    this.own = false;
    this.autocommitOpen = false;
  }
}
