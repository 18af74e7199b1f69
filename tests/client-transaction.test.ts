import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { commandComplete, errorResponse, readyForQuery } from '../src/protocol/backend-writer.js';
import {
  ClientTransaction,
  splitAutocommitOutput,
  withAutocommit,
} from '../src/proxy/session/client-transaction.js';
import { replies } from '../src/proxy/sql/test-transaction.js';
import { dataRowFrame } from './helpers/wire.js';

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

describe('a unit and its autocommit savepoint in one engine call', () => {
  const unit = serialize.query('SELECT 1');
  const savepointReply = Buffer.concat([commandComplete('SAVEPOINT'), readyForQuery('T')]);
  const unitReply = Buffer.concat([dataRowFrame('1'), commandComplete('SELECT 1'), readyForQuery('T')]);
  const failure = errorResponse({ severity: 'ERROR', code: '22012', message: 'division by zero' });
  const aborted = errorResponse({
    severity: 'ERROR',
    code: '25P02',
    message: 'current transaction is aborted',
  });

  it('sends the savepoint in front of the unit and its RELEASE behind, as simple queries', () => {
    expect(withAutocommit(unit, true)).toEqual(
      Buffer.concat([
        serialize.query('SAVEPOINT pglite_oxide_autocommit'),
        unit,
        serialize.query('RELEASE SAVEPOINT pglite_oxide_autocommit'),
      ]),
    );
    expect(withAutocommit(unit, false)).toEqual(
      Buffer.concat([serialize.query('SAVEPOINT pglite_oxide_autocommit'), unit]),
    );
  });

  it("cuts the engine's output into the three replies", () => {
    const releaseReply = Buffer.concat([commandComplete('RELEASE'), readyForQuery('T')]);
    expect(splitAutocommitOutput(Buffer.concat([savepointReply, unitReply, releaseReply]), true)).toEqual({
      savepoint: savepointReply,
      unit: unitReply,
      release: releaseReply,
    });
    // A failed extended unit: the engine adds a ReadyForQuery; the RELEASE fails in the aborted transaction.
    const failedUnit = Buffer.concat([failure, readyForQuery('E'), readyForQuery('E')]);
    const failedRelease = Buffer.concat([aborted, readyForQuery('E')]);
    expect(splitAutocommitOutput(Buffer.concat([savepointReply, failedUnit, failedRelease]), true)).toEqual({
      savepoint: savepointReply,
      unit: failedUnit,
      release: failedRelease,
    });
    // A batch flushed before its Sync: no RELEASE yet, the rest is the unit's.
    const partial = Buffer.concat([dataRowFrame('1'), commandComplete('SELECT 1')]);
    expect(splitAutocommitOutput(Buffer.concat([savepointReply, partial]), false)).toEqual({
      savepoint: savepointReply,
      unit: partial,
      release: null,
    });
  });

  it('refuses output of another shape: no ReadyForQuery, no unit, a torn message', () => {
    const releaseReply = Buffer.concat([commandComplete('RELEASE'), readyForQuery('T')]);
    expect(splitAutocommitOutput(commandComplete('SAVEPOINT'), false)).toBeNull();
    expect(splitAutocommitOutput(Buffer.concat([savepointReply, releaseReply]), true)).toBeNull();
    expect(
      splitAutocommitOutput(Buffer.concat([savepointReply, unitReply, dataRowFrame('x')]), true),
    ).toBeNull();
    const whole = Buffer.concat([savepointReply, unitReply, releaseReply]);
    expect(splitAutocommitOutput(whole.subarray(0, whole.length - 2), true)).toBeNull();
  });
});
