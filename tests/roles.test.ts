import { describe, expect, it } from 'vitest';
import { commandComplete, errorResponse, readyForQuery } from '../src/protocol/backend-writer.js';
import { ROLES_QUERY, RoleBook } from '../src/proxy/login/roles.js';
import { dataRowFrame } from './helpers/wire.js';

/** ROLES_QUERY's output: the superuser-only settings, then a row a role. */
function rolesOutput(rows: Array<Array<string | null>>): Buffer {
  return Buffer.concat([
    dataRowFrame('zero_damaged_pages,log_statement,session_replication_role'),
    commandComplete('SELECT 1'),
    ...rows.map((row) => dataRowFrame(...row)),
    commandComplete(`SELECT ${rows.length}`),
    readyForQuery('I'),
  ]);
}

describe('the role book', () => {
  it('reads every role with pg_catalog named in full: no client text is part of it', () => {
    const sql = ROLES_QUERY.toString('utf8', 5);
    expect(sql).toContain('FROM pg_catalog.pg_authid a');
    expect(sql).not.toMatch(/[^.]\b(lower|string_agg|has_parameter_privilege|has_database_privilege)\(/);
  });

  it('finds a role by its exact name, or null', () => {
    const book = new RoleBook(
      rolesOutput([
        [
          'app',
          '16384',
          't',
          'f',
          't',
          'SCRAM-SHA-256$4096:x',
          '3',
          'f',
          null,
          '["search_path=a, b", "TimeZone=UTC"]',
        ],
        ['App', '16385', 'f', 'f', 'f', null, '-1', 't', null, null],
      ]),
    );
    expect(book.role('app')).toEqual({
      name: 'app',
      oid: 16384,
      canLogin: true,
      superuser: false,
      createdb: true,
      mayConnect: false,
      connectionLimit: 3,
      password: 'SCRAM-SHA-256$4096:x',
      forbiddenSettings: [],
      defaults: new Map([
        ['search_path', 'a, b'],
        ['timezone', 'UTC'],
      ]),
    });
    expect(book.role('App')).toMatchObject({ canLogin: false, mayConnect: true, connectionLimit: -1 });
    expect(book.role('APP')).toBeNull();
  });

  it('names the superuser-only startup settings a role was not granted SET on', () => {
    const book = new RoleBook(
      rolesOutput([
        ['app', '16384', 't', 'f', 'f', null, '-1', 't', 'log_statement'],
        ['admin', '10', 't', 't', 't', null, '-1', 't', null],
      ]),
    );
    const asked = ['work_mem', 'log_statement', 'zero_damaged_pages'];
    expect(book.role('app', asked)?.forbiddenSettings).toEqual(['zero_damaged_pages']);
    expect(book.role('admin', asked)?.forbiddenSettings).toEqual([]);
  });

  it('throws when the engine answered with an error', () => {
    const failed = errorResponse({
      severity: 'ERROR',
      code: '42501',
      message: 'permission denied for table pg_authid',
    });
    expect(() => new RoleBook(Buffer.concat([failed, readyForQuery('I')]))).toThrow(/permission denied/);
  });
});
