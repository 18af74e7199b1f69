import { describe, expect, it } from 'vitest';
import { type ControlStatement, StatementNames } from '../src/proxy/session/statement-names.js';
import type { CopyInPlan } from '../src/proxy/sql/statement-effects.js';

const plan = (relation: string): CopyInPlan => ({
  loadSql: `COPY ${relation} FROM '/dev/blob'`,
  binary: false,
  columns: 0,
  relation: [relation],
});

const begin: ControlStatement = { sql: 'BEGIN', control: 'begin' };
const commit: ControlStatement = { sql: 'COMMIT', control: 'commit' };

describe('StatementNames: engine names', () => {
  it("keeps statements' names: the engine gives each client a statement table of its own", () => {
    const names = new StatementNames(7);
    names.parsed('s1', null);
    expect([...names.statements]).toEqual(['s1']);
  });

  it("gives each named portal a short engine name of the client's own, numbered in order", () => {
    const names = new StatementNames(7);
    expect(names.enginePortalName('p1')).toBe('pgo7p1');
    expect(names.enginePortalName('other')).toBe('pgo7p2');
    expect(names.enginePortalName('p1')).toBe('pgo7p1');
    // The unnamed portal passes as it is, and takes no number.
    expect(names.enginePortalName('')).toBe('');
    expect(names.enginePortalName('x')).toBe('pgo7p3');
  });

  it('gives two clients different engine names for the same portal name', () => {
    expect(new StatementNames(1).enginePortalName('p')).toBe('pgo1p1');
    expect(new StatementNames(11).enginePortalName('p')).toBe('pgo11p1');
  });

  it('gives long portal names that share a 63-byte prefix different short engine names', () => {
    const names = new StatementNames(2);
    const prefix = 'x'.repeat(70);
    expect(names.enginePortalName(`${prefix}a`)).toBe('pgo2p1');
    expect(names.enginePortalName(`${prefix}b`)).toBe('pgo2p2');
  });

  it('keeps portal names case-sensitive', () => {
    const names = new StatementNames(4);
    expect(names.enginePortalName('P')).toBe('pgo4p1');
    expect(names.enginePortalName('p')).toBe('pgo4p2');
  });
});

describe('StatementNames: open statements', () => {
  it('remembers named statements the client parsed, but not the unnamed one', () => {
    const names = new StatementNames(1);
    names.parsed('s1', null);
    names.parsed('', null);
    names.parsed('s2', plan('items'));
    names.parsed('s1', null);
    expect([...names.statements]).toEqual(['s1', 's2']);
  });

  it('forgets a statement the client closed', () => {
    const names = new StatementNames(1);
    names.parsed('s1', null);
    names.parsed('s2', null);
    names.closedStatement('s1');
    expect([...names.statements]).toEqual(['s2']);
    names.closedStatement('never-parsed');
    expect([...names.statements]).toEqual(['s2']);
  });

  it('does not count a statement the proxy answers itself as one the client prepared', () => {
    const names = new StatementNames(1);
    names.parsed('tx', null, begin);
    expect([...names.statements]).toEqual([]);
  });
});

describe('StatementNames: COPY FROM STDIN portals', () => {
  it('hands the COPY plan of a bound statement to the first Execute of its portal only', () => {
    const names = new StatementNames(1);
    const items = plan('items');
    names.parsed('load', items);
    names.bound('p', 'load');
    expect(names.isSpentCopyPortal('p')).toBe(false);
    expect(names.executeCopyPortal('p')).toEqual(items);
    expect(names.isSpentCopyPortal('p')).toBe(true);
    expect(names.executeCopyPortal('p')).toBeUndefined();
    expect(names.isSpentCopyPortal('p')).toBe(true);
  });

  it('plans the unnamed statement and portal too', () => {
    const names = new StatementNames(1);
    const items = plan('items');
    names.parsed('', items);
    names.bound('', '');
    expect(names.executeCopyPortal('')).toEqual(items);
    expect(names.isSpentCopyPortal('')).toBe(true);
  });

  it('renews a spent portal that is bound again', () => {
    const names = new StatementNames(1);
    const items = plan('items');
    names.parsed('load', items);
    names.bound('p', 'load');
    names.executeCopyPortal('p');
    names.bound('p', 'load');
    expect(names.isSpentCopyPortal('p')).toBe(false);
    expect(names.executeCopyPortal('p')).toEqual(items);
  });

  it('has no plan for a portal bound to a statement that is not a COPY FROM STDIN', () => {
    const names = new StatementNames(1);
    names.parsed('load', plan('items'));
    names.parsed('select', null);
    names.bound('p', 'load');
    names.bound('p', 'select');
    expect(names.executeCopyPortal('p')).toBeUndefined();
    expect(names.isSpentCopyPortal('p')).toBe(false);
    expect(names.executeCopyPortal('unbound')).toBeUndefined();
    expect(names.isSpentCopyPortal('unbound')).toBe(false);
  });

  it('drops the plan of a statement parsed again as something else', () => {
    const names = new StatementNames(1);
    names.parsed('s', plan('items'));
    names.parsed('s', null);
    names.bound('p', 's');
    expect(names.executeCopyPortal('p')).toBeUndefined();
  });

  it('takes the newest plan of a statement parsed again', () => {
    const names = new StatementNames(1);
    names.parsed('s', plan('items'));
    names.parsed('s', plan('orders'));
    names.bound('p', 's');
    expect(names.executeCopyPortal('p')).toEqual(plan('orders'));
  });

  it('binds no plan from a closed statement, but keeps the plan of a portal bound before', () => {
    const names = new StatementNames(1);
    const items = plan('items');
    names.parsed('load', items);
    names.bound('before', 'load');
    names.closedStatement('load');
    names.bound('after', 'load');
    expect(names.executeCopyPortal('after')).toBeUndefined();
    expect(names.executeCopyPortal('before')).toEqual(items);
  });

  it('forgets the plan and the spent mark of a closed portal', () => {
    const names = new StatementNames(1);
    names.parsed('load', plan('items'));
    names.bound('spent', 'load');
    names.bound('ready', 'load');
    names.executeCopyPortal('spent');
    names.closedPortal('spent');
    names.closedPortal('ready');
    expect(names.isSpentCopyPortal('spent')).toBe(false);
    expect(names.executeCopyPortal('ready')).toBeUndefined();
  });

  it('forgets every COPY portal when the transaction ends, but keeps the statements', () => {
    const names = new StatementNames(1);
    const items = plan('items');
    names.parsed('load', items);
    names.bound('spent', 'load');
    names.bound('ready', 'load');
    names.executeCopyPortal('spent');
    names.transactionEnded();
    expect(names.isSpentCopyPortal('spent')).toBe(false);
    expect(names.executeCopyPortal('ready')).toBeUndefined();
    expect([...names.statements]).toEqual(['load']);
    names.bound('again', 'load');
    expect(names.executeCopyPortal('again')).toEqual(items);
  });
});

describe('StatementNames: statements the proxy answers', () => {
  it('remembers transaction control statements and the portals bound to them', () => {
    const names = new StatementNames(1);
    names.parsed('tx', null, begin);
    names.parsed('', null, commit);
    expect(names.controlStatement('tx')).toEqual(begin);
    expect(names.controlStatement('')).toEqual(commit);
    expect(names.controlStatement('other')).toBeUndefined();
    names.bound('p', 'tx');
    names.bound('', '');
    expect(names.controlPortal('p')).toEqual(begin);
    expect(names.controlPortal('')).toEqual(commit);
    expect(names.controlPortal('other')).toBeUndefined();
  });

  it('forgets the control of a statement parsed again without one, and of its portals bound again', () => {
    const names = new StatementNames(1);
    names.parsed('tx', null, begin);
    names.bound('p', 'tx');
    names.parsed('tx', null);
    expect(names.controlStatement('tx')).toBeUndefined();
    expect([...names.statements]).toEqual(['tx']);
    // The portal keeps what it was bound to until it is bound again.
    expect(names.controlPortal('p')).toEqual(begin);
    names.bound('p', 'tx');
    expect(names.controlPortal('p')).toBeUndefined();
  });

  it('forgets the control of a closed statement and of a closed portal', () => {
    const names = new StatementNames(1);
    names.parsed('tx', null, begin);
    names.bound('p', 'tx');
    names.closedStatement('tx');
    expect(names.controlStatement('tx')).toBeUndefined();
    expect(names.controlPortal('p')).toEqual(begin);
    names.closedPortal('p');
    expect(names.controlPortal('p')).toBeUndefined();
  });

  it('keeps control and COPY plans apart', () => {
    const names = new StatementNames(1);
    names.parsed('tx', null, begin);
    names.parsed('load', plan('items'));
    names.bound('p', 'tx');
    names.bound('q', 'load');
    expect(names.executeCopyPortal('p')).toBeUndefined();
    expect(names.controlPortal('q')).toBeUndefined();
    expect(names.controlStatement('load')).toBeUndefined();
  });
});
