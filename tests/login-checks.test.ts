import { describe, expect, it } from 'vitest';
import { type LoginFacts, loginVerdict } from '../src/proxy/login/login-checks.js';
import type { Role } from '../src/proxy/login/roles.js';

const role = (over: Partial<Role> = {}): Role => ({
  name: 'app',
  oid: 16384,
  canLogin: true,
  superuser: false,
  createdb: false,
  mayConnect: true,
  connectionLimit: -1,
  password: null,
  forbiddenSettings: [],
  defaults: new Map(),
  ...over,
});
const fine: LoginFacts = {
  database: 'shop',
  databaseRefusal: null,
  rolesEnforced: true,
  connections: { all: 3, role: 1, database: 1 },
  connectionLimits: { all: 100, database: -1 },
};
const full = { connections: { all: 100, role: 2, database: 2 } };

describe('who may log in', () => {
  it('admits a role that may log in, to a database it can have, with room', () => {
    expect(loginVerdict('app', role(), fine)).toEqual({ admitted: role() });
  });

  it("refuses in PostgreSQL's order and words", () => {
    const refused = (r: Role | null, facts: Partial<LoginFacts> = {}) => {
      const verdict = loginVerdict('app', r, { ...fine, ...facts });
      return 'refused' in verdict ? [verdict.refused.code, verdict.refused.message] : null;
    };
    expect(refused(null)).toEqual(['28000', 'role "app" does not exist']);
    expect(refused(role({ canLogin: false }), full)).toEqual([
      '28000',
      'role "app" is not permitted to log in',
    ]);
    expect(
      refused(role(), { databaseRefusal: { code: '3D000', message: 'database "x" does not exist' } }),
    ).toEqual(['3D000', 'database "x" does not exist']);
    expect(refused(role({ connectionLimit: 2 }), full)).toEqual([
      '53300',
      'too many connections for role "app"',
    ]);
    expect(refused(role({ mayConnect: false }), { connectionLimits: { all: 100, database: 1 } })).toEqual([
      '42501',
      'permission denied for database "shop"',
    ]);
    expect(refused(role(), { connectionLimits: { all: 100, database: 1 } })).toEqual([
      '53300',
      'too many connections for database "shop"',
    ]);
    expect(refused(role({ forbiddenSettings: ['zero_damaged_pages'] }))).toEqual([
      '42501',
      'permission denied to set parameter "zero_damaged_pages"',
    ]);
    expect(refused(role(), full)).toEqual(['53300', 'sorry, too many clients already']);
  });

  it('lets superusers past the limits of roles and databases, not past maxConnections', () => {
    const admin = role({ superuser: true, connectionLimit: 0 });
    expect(
      loginVerdict('app', admin, { ...fine, connectionLimits: { all: 100, database: 0 } }),
    ).toHaveProperty('admitted');
    expect(loginVerdict('app', admin, { ...fine, ...full })).toHaveProperty('refused');
  });

  it('fails closed: a role that is not a superuser is refused when the engine cannot run as it', () => {
    const verdict = loginVerdict('app', role(), { ...fine, rolesEnforced: false });
    expect(verdict).toMatchObject({
      refused: { code: '28000', message: expect.stringContaining('cannot enforce') },
    });
    expect(
      loginVerdict('admin', role({ superuser: true }), { ...fine, rolesEnforced: false }),
    ).toHaveProperty('admitted');
  });
});
