// Clients may connect as any role of the database that may log in, as on a server: the proxy
// looks the role up in the engine's catalog, and the client's units then run as that role.
import { serialize } from 'pg-protocol';
import type { DataRowMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';
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
  let role: Role | null = null;
  let error: string | null = null;
  new Parser().parse(Buffer.from(output.buffer, output.byteOffset, output.byteLength), (message) => {
    if (message.name === 'error') error = (message as unknown as { message: string }).message;
    if (message.name !== 'dataRow') return;
    const [canLogin, superuser, password] = (message as DataRowMessage).fields;
    role = { name, canLogin: canLogin === 't', superuser: superuser === 't', password: password ?? null };
  });
  if (error) throw new Error(`looking up role "${name}" failed: ${error}`);
  return role;
}
