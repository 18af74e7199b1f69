import { describe, expect, it } from 'vitest';
import { commandComplete } from '../src/protocol/backend-writer.js';
import { ClientTransaction } from '../src/proxy/client-transaction.js';
import { replies } from '../src/proxy/test-transaction.js';

describe('ClientTransaction', () => {
  it("gives each unit outside the client's own transaction a savepoint, kept on success and undone on failure", () => {
    const transaction = new ClientTransaction();
    expect(transaction.openAutocommit(false, false)).toBeNull(); // no test open: nothing to do
    expect(transaction.openAutocommit(true, true)).toBeNull(); // inside the client's batch
    expect(transaction.openAutocommit(true, false)).toBe('SAVEPOINT pglite_oxide_autocommit');
    expect(transaction.openAutocommit(true, false)).toBeNull(); // already open
    expect(transaction.closeAutocommit(null, false)).toBeNull(); // the unit is not over
    expect(transaction.closeAutocommit('T', false)).toBe('RELEASE SAVEPOINT pglite_oxide_autocommit');
    expect(transaction.closeAutocommit('T', false)).toBeNull();
    transaction.openAutocommit(true, false);
    expect(transaction.closeAutocommit('E', false)).toBe(
      'ROLLBACK TO SAVEPOINT pglite_oxide_autocommit; RELEASE SAVEPOINT pglite_oxide_autocommit',
    );
  });

  it('turns BEGIN, COMMIT and ROLLBACK into a savepoint of its own, with the replies of a real server', () => {
    const transaction = new ClientTransaction();
    expect(transaction.control('commit', 'I')).toEqual({
      kind: 'answer',
      reply: replies.noTransaction('COMMIT'),
      failed: false,
    });
    const begin = transaction.control('begin', 'I');
    expect(begin).toEqual({
      kind: 'savepoint',
      sql: 'SAVEPOINT pglite_oxide_client_tx',
      reply: commandComplete('BEGIN'),
      status: 'T',
    });
    transaction.controlled('T');
    expect(transaction.own).toBe(true);
    expect(transaction.clientStatus('T', true)).toBe('T');
    expect(transaction.openAutocommit(true, false)).toBeNull(); // its statements run in its savepoint
    expect(transaction.control('begin', 'T')).toEqual({
      kind: 'answer',
      reply: replies.alreadyInTransaction(),
      failed: false,
    });
    expect(transaction.control('savepoint', 'T')).toEqual({ kind: 'run' });
    // COMMIT of a failed transaction rolls it back, and says so.
    expect(transaction.control('commit', 'E')).toEqual({
      kind: 'savepoint',
      sql: 'ROLLBACK TO SAVEPOINT pglite_oxide_client_tx; RELEASE SAVEPOINT pglite_oxide_client_tx',
      reply: commandComplete('ROLLBACK'),
      status: 'I',
    });
    expect(transaction.control('commit', 'T')).toMatchObject({
      sql: 'RELEASE SAVEPOINT pglite_oxide_client_tx',
      reply: commandComplete('COMMIT'),
    });
    transaction.controlled('I');
    expect(transaction.own).toBe(false);
    expect(transaction.clientStatus('T', true)).toBe('I'); // the test's transaction is not the client's
    expect(transaction.clientStatus('T', false)).toBe('T');
  });

  it('refuses what a test transaction cannot give, failing the rest of the Query', () => {
    const transaction = new ClientTransaction();
    expect(transaction.control('unsupported', 'I')).toEqual({
      kind: 'answer',
      reply: replies.unsupported(),
      failed: true,
    });
    expect(transaction.control('rollback-to', 'I')).toEqual({
      kind: 'answer',
      reply: replies.outsideTransactionBlock('ROLLBACK TO SAVEPOINT'),
      failed: true,
    });
  });

  it('undoes what a leaving client left open', () => {
    const transaction = new ClientTransaction();
    expect(transaction.rollbackOnLeave('I')).toBeNull();
    expect(transaction.rollbackOnLeave('T')).toBe('ROLLBACK'); // outside a test
    transaction.openAutocommit(true, false);
    expect(transaction.rollbackOnLeave('I')).toMatch(/^ROLLBACK TO SAVEPOINT pglite_oxide_autocommit/);
    transaction.controlled('T');
    expect(transaction.rollbackOnLeave('T')).toMatch(/^ROLLBACK TO SAVEPOINT pglite_oxide_client_tx/);
    expect(transaction.own).toBe(false);
  });
});
