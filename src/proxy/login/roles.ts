// Clients may connect as any role of the database that may log in, as on a server: the proxy
// looks the role up in the engine's catalog, and the client's units then run as that role.
import { serialize } from 'pg-protocol';
import { readRows } from '../../protocol/backend-rows.js';
import { dollarQuote } from '../../protocol/sql-quote.js';
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

/**
 * The Query that looks a role up (pg_authid, which only a superuser may read), with which of
 * `settings` (names a client's startup sets) it may not set, as PostgreSQL checks at login.
 */
export function roleQuery(name: string, settings: Iterable<string> = []): Buffer {
  const names = [...settings].map(dollarQuote).join(', ');
  return serialize.query(
    // Qualified throughout: it runs as a superuser, and no function or operator of a client's
    // may stand in for pg_catalog's.
    'SELECT a.oid, a.rolcanlogin, a.rolsuper, a.rolpassword, ' +
      `(SELECT pg_catalog.string_agg(s.name, ',') FROM pg_catalog.pg_settings s ` +
      `WHERE pg_catalog.lower(s.name) OPERATOR(pg_catalog.=) ANY(ARRAY[${names}]::pg_catalog.text[]) ` +
      `AND s.context OPERATOR(pg_catalog.=) ANY(ARRAY['superuser', 'superuser-backend']::pg_catalog.text[]) ` +
      `AND NOT a.rolsuper AND NOT pg_catalog.has_parameter_privilege(a.oid, s.name, 'SET')) ` +
      `FROM pg_catalog.pg_authid a WHERE a.rolname OPERATOR(pg_catalog.=) ${dollarQuote(name)}::pg_catalog.name`,
  );
}

/**
 * The role roleQuery's output names: null when there is no such role. Throws when the engine
 * answered with an error.
 */
export function roleRead(name: string, output: Uint8Array): Role | null {
  const { rows, error } = readRows(output);
  if (error) throw new Error(`looking up role "${name}" failed: ${error.message}`);
  const [row] = rows;
  if (!row) return null;
  const [oid, canLogin, superuser, password, forbidden] = row;
  return {
    name,
    oid: Number(oid),
    canLogin: canLogin === 't',
    superuser: superuser === 't',
    password: password ?? null,
    forbiddenSettings: forbidden ? forbidden.split(',') : [],
  };
}
