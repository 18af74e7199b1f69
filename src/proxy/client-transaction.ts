import { commandComplete, type TransactionStatus } from '../protocol/backend-writer.js';
import {
  BEGIN_AUTOCOMMIT,
  BEGIN_CLIENT_TRANSACTION,
  COMMIT_CLIENT_TRANSACTION,
  END_AUTOCOMMIT,
  ROLLBACK_CLIENT_TRANSACTION,
  replies,
  type TransactionControl,
  UNDO_AUTOCOMMIT,
} from './test-transaction.js';

/** What a client's transaction-control statement comes to under a test's transaction. */
export type ControlStep =
  /** Answered by the proxy alone; `failed` skips the rest of the client's Query, as an error does. */
  | { kind: 'answer'; reply: Buffer; failed: boolean }
  /** The proxy runs `sql` (a savepoint), then the client is in `status` and gets `reply`. */
  | { kind: 'savepoint'; sql: string; reply: Buffer; status: TransactionStatus }
  /** The statement runs on the engine as it is (a savepoint of the client's inside its own transaction). */
  | { kind: 'run' };

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
