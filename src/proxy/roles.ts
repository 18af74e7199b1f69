// Clients may connect as any role of the database that may log in, as on a server: the proxy
// looks the role up in the engine's catalog, and the client's units then run as that role.
import { serialize } from 'pg-protocol';
import { readRows } from '../protocol/backend-rows.js';
import { dollarQuote } from '../protocol/sql-quote.js';

/** A role as the engine's catalog has it. */
export interface Role {
  name: string;
  canLogin: boolean;
  superuser: boolean;
  /** Its password as pg_authid stores it (a SCRAM verifier, an md5 hash), or null. */
  password: string | null;
}

/** The Query that looks a role up (pg_authid, which only a superuser may read). */
export function roleQuery(name: string): Buffer {
  return serialize.query(
    'SELECT rolcanlogin, rolsuper, rolpassword FROM pg_catalog.pg_authid ' +
      `WHERE rolname = ${dollarQuote(name)}`,
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
  const [canLogin, superuser, password] = row;
  return { name, canLogin: canLogin === 't', superuser: superuser === 't', password: password ?? null };
}
