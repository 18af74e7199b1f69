// Isolation 'transaction': every test runs inside one outer transaction the toolkit opens and
// rolls back, and clients must not notice. Their own transaction control becomes savepoints inside
// it; what a real server would answer is built here.

import { commandComplete, errorResponse, noticeResponse } from '../../protocol/backend-writer.js';
import { rewriteErrorFields } from '../../protocol/error-rewrite.js';
import {
  leadingTokens,
  type SqlDialect,
  STANDARD_DIALECT,
  splitStatements,
} from '../../protocol/sql-lexer.js';

/** The savepoint standing for a client's own transaction. */
export const CLIENT_TRANSACTION = 'pglite_oxide_client_tx';
/** The savepoint around each statement a client runs outside a transaction of its own. */
export const AUTOCOMMIT = 'pglite_oxide_autocommit';

export const BEGIN_CLIENT_TRANSACTION = `SAVEPOINT ${CLIENT_TRANSACTION}`;
export const COMMIT_CLIENT_TRANSACTION = `RELEASE SAVEPOINT ${CLIENT_TRANSACTION}`;
export const ROLLBACK_CLIENT_TRANSACTION = `ROLLBACK TO SAVEPOINT ${CLIENT_TRANSACTION}; RELEASE SAVEPOINT ${CLIENT_TRANSACTION}`;
export const BEGIN_AUTOCOMMIT = `SAVEPOINT ${AUTOCOMMIT}`;
export const END_AUTOCOMMIT = `RELEASE SAVEPOINT ${AUTOCOMMIT}`;
export const UNDO_AUTOCOMMIT = `ROLLBACK TO SAVEPOINT ${AUTOCOMMIT}; RELEASE SAVEPOINT ${AUTOCOMMIT}`;

export type TransactionControl =
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback-to'
  | 'unsupported';

export interface Statement {
  sql: string;
  /** null for any statement that is not transaction control. */
  control: TransactionControl | null;
}

/** What a transaction-control statement is, or null when it is something else. */
export function transactionControlOf(sql: string, start = 0, end = sql.length): TransactionControl | null {
  const [first, second, third] = leadingTokens(sql, 3, start, end).map((token) =>
    token.kind === 'word' ? token.value : '',
  );
  switch (first) {
    case 'BEGIN':
      return 'begin';
    case 'START':
      return second === 'TRANSACTION' ? 'begin' : null;
    case 'COMMIT':
    case 'END':
      if (second === 'PREPARED' || chained(sql, start, end)) return 'unsupported';
      return 'commit';
    case 'ABORT':
      return chained(sql, start, end) ? 'unsupported' : 'rollback';
    case 'ROLLBACK':
      if (second === 'PREPARED' || chained(sql, start, end)) return 'unsupported';
      if (second === 'TO' || third === 'TO') return 'rollback-to';
      return 'rollback';
    case 'SAVEPOINT':
      return 'savepoint';
    case 'RELEASE':
      return 'release';
    case 'PREPARE':
      return second === 'TRANSACTION' ? 'unsupported' : null;
    default:
      return null;
  }
}

function chained(sql: string, start: number, end: number): boolean {
  const words = leadingTokens(sql, 6, start, end).map((token) => token.value);
  const and = words.indexOf('AND');
  return and >= 0 && words[and + 1] === 'CHAIN';
}

/** The statements of a simple Query, or null when none of them is transaction control. */
export function statementsWithControl(
  sql: string,
  dialect: SqlDialect = STANDARD_DIALECT,
): Statement[] | null {
  const ranges = splitStatements(sql, dialect);
  const statements = ranges.map(([start, end]) => ({
    sql: sql.slice(start, end),
    control: transactionControlOf(sql, start, end),
  }));
  return statements.some((statement) => statement.control !== null) ? statements : null;
}

/** Replies a real server gives to transaction control that changes nothing. */
export const replies = {
  alreadyInTransaction: (): Buffer =>
    Buffer.concat([
      noticeResponse({
        severity: 'WARNING',
        code: '25001',
        message: 'there is already a transaction in progress',
      }),
      commandComplete('BEGIN'),
    ]),
  noTransaction: (tag: 'COMMIT' | 'ROLLBACK'): Buffer =>
    Buffer.concat([
      noticeResponse({ severity: 'WARNING', code: '25P01', message: 'there is no transaction in progress' }),
      commandComplete(tag),
    ]),
  outsideTransactionBlock: (statement: 'SAVEPOINT' | 'RELEASE SAVEPOINT' | 'ROLLBACK TO SAVEPOINT'): Buffer =>
    errorResponse({
      severity: 'ERROR',
      code: '25P01',
      message: `${statement} can only be used in transaction blocks`,
    }),
  unsupported: (): Buffer =>
    errorResponse({
      severity: 'ERROR',
      code: '0A000',
      message: 'prepared transactions and AND CHAIN are not supported under isolation "transaction"',
      hint: "Each test runs inside a transaction the test toolkit rolls back. Use isolation 'reset' for this test.",
    }),
  mixedControl: {
    code: '0A000',
    message:
      'transaction control and other statements in one extended-protocol batch (up to a Sync) are not supported under isolation "transaction"',
  },
};

const TRANSACTION_BLOCK_HINT =
  "pglite-oxide runs each test inside a transaction (isolation 'transaction'), so this statement " +
  "cannot run here. Use isolation 'reset' for tests that need it: each test then starts from the " +
  'exact template state without a surrounding transaction.';

/**
 * Engine output with every 25001 "cannot run inside a transaction block" error given the hint
 * that explains why and what to do; other messages pass unchanged.
 */
export function explainTransactionBlockErrors(output: Uint8Array): Uint8Array {
  return rewriteErrorFields(output, (fields) => {
    const code = fields.find(([letter]) => letter === 'C')?.[1];
    if (code !== '25001' || fields.some(([letter]) => letter === 'H')) return null;
    return [...fields, ['H', TRANSACTION_BLOCK_HINT]];
  });
}
