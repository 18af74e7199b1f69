import { describe, expect, it } from 'vitest';
import { commandComplete, errorResponse, readyForQuery } from '../src/protocol/backend-writer.js';
import { roleQuery, roleRead } from '../src/proxy/roles.js';
import { dataRowFrame } from './helpers/wire.js';

describe('roles', () => {
  it('looks a role up by a name quoted so that no client text becomes SQL', () => {
    const sql = roleQuery("o'neil$q$").toString('utf8', 5);
    expect(sql).toContain("FROM pg_catalog.pg_authid WHERE rolname = $q1$o'neil$q$$q1$");
  });

  it('reads the role, or null when there is none; an engine error throws', () => {
    const found = Buffer.concat([
      dataRowFrame('t', 'f', null),
      commandComplete('SELECT 1'),
      readyForQuery('I'),
    ]);
    expect(roleRead('app', found)).toEqual({ name: 'app', canLogin: true, superuser: false, password: null });
    expect(roleRead('app', Buffer.concat([commandComplete('SELECT 0'), readyForQuery('I')]))).toBeNull();
    const failed = errorResponse({
      severity: 'ERROR',
      code: '42501',
      message: 'permission denied for table pg_authid',
    });
    expect(() => roleRead('app', Buffer.concat([failed, readyForQuery('I')]))).toThrow(/permission denied/);
  });
});
