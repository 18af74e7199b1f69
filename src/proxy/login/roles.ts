// Clients may connect as any role of the database that may log in, as on a server: the proxy
// answers from its own copy of the engine's roles (RoleBook), so that a login never waits for an
// engine another client holds, and the client's units then run as that role.
import { serialize } from 'pg-protocol';
import { readRows } from '../../protocol/backend-rows.js';
import { ENGINE_ROLE } from '../../runtime/engine-identity.js';

/** A role as the engine's catalog has it. */
export interface Role {
  name: string;
  /** Its oid; ENGINE_ROLE for the engine's own user, which needs no look-up. */
  oid: number;
  canLogin: boolean;
  superuser: boolean;
  /** Its password as pg_authid stores it (a SCRAM verifier, an md5 hash), or null. */
  password: string | null;
  /**
   * Settings of the client's startup that the role may not set (superuser-only ones without a
   * GRANT SET): PostgreSQL refuses such a login.
   */
  forbiddenSettings: string[];
}

/** The engine's own user, which needs no look-up. */
export function engineRole(name: string): Role {
  return {
    name,
    oid: ENGINE_ROLE,
    canLogin: true,
    superuser: true,
    password: null,
    forbiddenSettings: [],
  };
}

/** A role as the book keeps it: which superuser-only settings it was granted SET on. */
interface KeptRole {
  oid: number;
  canLogin: boolean;
  superuser: boolean;
  password: string | null;
  grantedSettings: ReadonlySet<string>;
}

/**
 * The Query that reads every role (pg_authid, which only a superuser may read). Its first row
 * lists the settings only a superuser may set (lower case); a row a role follows, with the ones of
 * those it was granted SET on. Qualified throughout: it runs as a superuser, and no function or
 * operator of a client's may stand in for pg_catalog's.
 */
export const ROLES_QUERY = serialize.query(
  "SELECT pg_catalog.string_agg(pg_catalog.lower(s.name), ',') FROM pg_catalog.pg_settings s " +
    `WHERE s.context OPERATOR(pg_catalog.=) ANY(ARRAY['superuser', 'superuser-backend']::pg_catalog.text[]); ` +
    'SELECT a.rolname, a.oid, a.rolcanlogin, a.rolsuper, a.rolpassword, ' +
    `(SELECT pg_catalog.string_agg(pg_catalog.lower(s.name), ',') FROM pg_catalog.pg_settings s ` +
    `WHERE s.context OPERATOR(pg_catalog.=) ANY(ARRAY['superuser', 'superuser-backend']::pg_catalog.text[]) ` +
    `AND NOT a.rolsuper AND pg_catalog.has_parameter_privilege(a.oid, s.name, 'SET')) ` +
    'FROM pg_catalog.pg_authid a',
);

/** The proxy's copy of a database's roles, as ROLES_QUERY read them. */
export class RoleBook {
  private readonly roles = new Map<string, KeptRole>();
  private readonly superuserSettings: ReadonlySet<string>;

  /** Reads ROLES_QUERY's output; throws when the engine answered with an error. */
  constructor(output: Uint8Array) {
    const { rows, error } = readRows(output);
    if (error) throw new Error(`reading the roles failed: ${error.message}`);
    const [[settings] = [null], ...roles] = rows;
    this.superuserSettings = new Set(settings ? settings.split(',') : []);
    for (const [name, oid, canLogin, superuser, password, granted] of roles) {
      this.roles.set(name!, {
        oid: Number(oid),
        canLogin: canLogin === 't',
        superuser: superuser === 't',
        password: password ?? null,
        grantedSettings: new Set(granted ? granted.split(',') : []),
      });
    }
  }

  /**
   * Role `name`, with which of `settings` (lower-case names a client's startup sets) it may not
   * set, as PostgreSQL checks at login; null when there is no such role.
   */
  role(name: string, settings: Iterable<string> = []): Role | null {
    const kept = this.roles.get(name);
    if (!kept) return null;
    const forbiddenSettings = kept.superuser
      ? []
      : [...settings].filter(
          (setting) => this.superuserSettings.has(setting) && !kept.grantedSettings.has(setting),
        );
    return {
      name,
      oid: kept.oid,
      canLogin: kept.canLogin,
      superuser: kept.superuser,
      password: kept.password,
      forbiddenSettings,
    };
  }
}
