import { describe, expect, it } from 'vitest';
import { commandComplete, errorResponse, readyForQuery } from '../src/protocol/backend-writer.js';
import { roleQuery, roleRead } from '../src/proxy/login/roles.js';
import { dataRowFrame } from './helpers/wire.js';

describe('roles', () => {
  it('looks a role up by a name quoted so that no client text becomes SQL', () => {
    const sql = roleQuery("o'neil$q$").toString('utf8', 5);
    expect(sql).toContain("WHERE a.rolname OPERATOR(pg_catalog.=) $q1$o'neil$q$$q1$::pg_catalog.name");
  });

  it('asks which startup settings the role may not set, names quoted too', () => {
    const sql = roleQuery('app', ["x'); DROP TABLE t; --", 'work_mem']).toString('utf8', 5);
    expect(sql).toContain("ARRAY[$q$x'); DROP TABLE t; --$q$, $q$work_mem$q$]::pg_catalog.text[]");
    expect(roleQuery('app').toString('utf8', 5)).toContain('ARRAY[]::pg_catalog.text[]');
  });

  it('reads the role, or null when there is none; an engine error throws', () => {
    const found = Buffer.concat([
      dataRowFrame('16384', 't', 'f', null, 'zero_damaged_pages,log_statement'),
      commandComplete('SELECT 1'),
      readyForQuery('I'),
    ]);
    expect(roleRead('app', found)).toEqual({
      name: 'app',
      oid: 16384,
      canLogin: true,
      superuser: false,
      password: null,
      forbiddenSettings: ['zero_damaged_pages', 'log_statement'],
    });
    expect(roleRead('app', Buffer.concat([commandComplete('SELECT 0'), readyForQuery('I')]))).toBeNull();
    const failed = errorResponse({
      severity: 'ERROR',
      code: '42501',
      message: 'permission denied for table pg_authid',
    });
    expect(() => roleRead('app', Buffer.concat([failed, readyForQuery('I')]))).toThrow(/permission denied/);
  });
});
