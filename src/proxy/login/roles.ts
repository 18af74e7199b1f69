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
  /** It may create databases (CREATEDB). */
  createdb: boolean;
  /** Its CONNECT privilege on this database (as a superuser, or through PUBLIC or a role it is in). */
  mayConnect: boolean;
  /** How many clients may be logged in as it at once (rolconnlimit); -1 for no limit. */
  connectionLimit: number;
  /** Its password as pg_authid stores it (a SCRAM verifier, an md5 hash), or null. */
  password: string | null;
  /**
   * Settings of the client's startup that the role may not set (superuser-only ones without a
   * GRANT SET): PostgreSQL refuses such a login.
   */
  forbiddenSettings: string[];
  /**
   * Its settings from ALTER ROLE ... SET and ALTER DATABASE ... SET (pg_db_role_setting) for this
   * database, by lower-case name: a login starts with them, under its startup parameters.
   */
  defaults: ReadonlyMap<string, string>;
}

/**
 * The engine's own user, which needs no look-up: a superuser, with the settings ALTER ROLE/DATABASE
 * ... SET gave it as far as the proxy's copy of the roles knows them.
 */
export function engineRole(name: string, defaults: ReadonlyMap<string, string> = new Map()): Role {
  return {
    name,
    oid: ENGINE_ROLE,
    canLogin: true,
    superuser: true,
    createdb: true,
    mayConnect: true,
    connectionLimit: -1,
    password: null,
    forbiddenSettings: [],
    defaults,
  };
}

/** A role as the book keeps it: which superuser-only settings it was granted SET on. */
interface KeptRole {
  oid: number;
  canLogin: boolean;
  superuser: boolean;
  createdb: boolean;
  mayConnect: boolean;
  connectionLimit: number;
  password: string | null;
  grantedSettings: ReadonlySet<string>;
  defaults: ReadonlyMap<string, string>;
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
    'SELECT a.rolname, a.oid, a.rolcanlogin, a.rolsuper, a.rolcreatedb, a.rolpassword, a.rolconnlimit, ' +
    "pg_catalog.has_database_privilege(a.oid, pg_catalog.current_database(), 'CONNECT'), " +
    `(SELECT pg_catalog.string_agg(pg_catalog.lower(s.name), ',') FROM pg_catalog.pg_settings s ` +
    `WHERE s.context OPERATOR(pg_catalog.=) ANY(ARRAY['superuser', 'superuser-backend']::pg_catalog.text[]) ` +
    `AND NOT a.rolsuper AND pg_catalog.has_parameter_privilege(a.oid, s.name, 'SET')), ` +
    // PostgreSQL's order, the later winning: all, this database, this role, both.
    '(SELECT pg_catalog.array_to_json(pg_catalog.array_agg(c.setting ORDER BY c.rank)) FROM (' +
    'SELECT pg_catalog.unnest(d.setconfig) AS setting, CASE WHEN d.setrole OPERATOR(pg_catalog.=) 0 ' +
    'AND d.setdatabase OPERATOR(pg_catalog.=) 0 THEN 0 WHEN d.setrole OPERATOR(pg_catalog.=) 0 THEN 1 ' +
    'WHEN d.setdatabase OPERATOR(pg_catalog.=) 0 THEN 2 ELSE 3 END AS rank ' +
    'FROM pg_catalog.pg_db_role_setting d WHERE d.setrole OPERATOR(pg_catalog.=) ANY(ARRAY[0, a.oid]::pg_catalog.oid[]) ' +
    'AND d.setdatabase OPERATOR(pg_catalog.=) ANY(ARRAY[0, (SELECT b.oid FROM pg_catalog.pg_database b ' +
    'WHERE b.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())]::pg_catalog.oid[])) c) ' +
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
    for (const [
      name,
      oid,
      canLogin,
      superuser,
      createdb,
      password,
      limit,
      connect,
      granted,
      defaults,
    ] of roles) {
      this.roles.set(name!, {
        defaults: settingsOf(defaults ?? null),
        oid: Number(oid),
        canLogin: canLogin === 't',
        superuser: superuser === 't',
        createdb: createdb === 't',
        mayConnect: connect === 't',
        connectionLimit: Number(limit),
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
      createdb: kept.createdb,
      mayConnect: kept.mayConnect,
      connectionLimit: kept.connectionLimit,
      password: kept.password,
      forbiddenSettings,
      defaults: kept.defaults,
    };
  }
}

/** `name=value` entries (a JSON array, as ROLES_QUERY gives them) as settings by lower-case name. */
function settingsOf(json: string | null): Map<string, string> {
  const settings = new Map<string, string>();
  for (const entry of json ? (JSON.parse(json) as string[]) : []) {
    const equals = entry.indexOf('=');
    if (equals > 0) settings.set(entry.slice(0, equals).toLowerCase(), entry.slice(equals + 1));
  }
  return settings;
}
