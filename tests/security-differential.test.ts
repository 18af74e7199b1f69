import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NativeServer, startNativePostgres } from '../bench/native-postgres.js';
import { installAndInitIn } from '../src/install/install.js';
import { startThreadedProxy, type ThreadedProxyHandle } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { asUser } from './helpers/pg-query.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { tempRoot } from './helpers/temp-root.js';

// Attempts to escalate privileges or reach past a role's rights, run side by side against the
// proxy and a native PostgreSQL: the SQLSTATE of every step and what is visible afterwards must
// match. PostgreSQL's own checks decide (the proxy reads no SQL for them), so SQL built at run
// time (EXECUTE, functions, prepared statements) is refused exactly where a server refuses it.

const SETUP = `
  CREATE ROLE app LOGIN;
  CREATE ROLE app2 LOGIN;
  CREATE ROLE admin LOGIN SUPERUSER;
  CREATE ROLE viewer;
  GRANT viewer TO app;
  CREATE TABLE docs (id int, owner text);
  INSERT INTO docs VALUES (1, 'app'), (2, 'viewer'), (3, 'postgres');
  ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
  CREATE POLICY own ON docs USING (owner = current_user);
  GRANT SELECT ON docs TO app, viewer;
  CREATE TABLE secrets (code text);
  INSERT INTO secrets VALUES ('s3');
  GRANT CREATE ON SCHEMA public TO app;
`;

/** A client of a case: its role, and options sent at startup (libpq's PGOPTIONS). */
interface CaseClient {
  user: string;
  options?: string;
}

interface Step {
  /** Which client runs it: 'app', 'app#2' (a second connection of app), 'admin', 'postgres'. */
  as: string;
  sql: string;
  /** Values of $1, $2...: the statement goes through the extended protocol. */
  values?: unknown[];
  /** A named prepared statement (extended protocol). */
  name?: string;
}

interface Case {
  name: string;
  steps: Step[];
  /** Clients that log in with startup options; the result of the login is recorded. */
  logins?: CaseClient[];
}

const ESCALATE = "SELECT pg_catalog.set_config('session_authorization', 'postgres', false)";
const WHO = 'SELECT session_user, current_user, current_setting($$is_superuser$$) AS su';

const CASES: Case[] = [
  {
    name: 'SET SESSION AUTHORIZATION to a superuser',
    steps: [
      { as: 'app', sql: 'SET SESSION AUTHORIZATION postgres' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'set_config(session_authorization)',
    steps: [
      { as: 'app', sql: ESCALATE },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'EXECUTE of SQL built at run time in a DO block',
    steps: [
      { as: 'app', sql: "DO $$BEGIN EXECUTE 'set session ' || 'authorization postgres'; END$$" },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'a function of its own',
    steps: [
      {
        as: 'app',
        sql: `CREATE FUNCTION pg_temp.up() RETURNS text LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('session_authorization', 'postgres', false); RETURN session_user; END$$`,
      },
      { as: 'app', sql: 'SELECT pg_temp.up()' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'a SECURITY DEFINER function',
    steps: [
      {
        as: 'app',
        sql: `CREATE FUNCTION up_definer() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$BEGIN PERFORM set_config('session_authorization', 'postgres', false); RETURN session_user; END$$`,
      },
      { as: 'app', sql: 'SELECT up_definer()' },
      { as: 'app', sql: 'DROP FUNCTION up_definer()' },
    ],
  },
  {
    name: 'PREPARE and EXECUTE',
    steps: [
      { as: 'app', sql: `PREPARE up AS ${ESCALATE}` },
      { as: 'app', sql: 'EXECUTE up' },
      { as: 'app', sql: 'DEALLOCATE up' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'the extended protocol with parameters',
    steps: [
      {
        as: 'app',
        sql: 'SELECT pg_catalog.set_config($1, $2, false)',
        values: ['session_authorization', 'postgres'],
      },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'a named prepared statement of the extended protocol',
    steps: [
      { as: 'app', sql: ESCALATE, name: 'escalate' },
      { as: 'app', sql: ESCALATE, name: 'escalate' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'SET LOCAL inside a transaction',
    steps: [
      { as: 'app', sql: 'BEGIN' },
      { as: 'app', sql: 'SET LOCAL SESSION AUTHORIZATION postgres' },
      { as: 'app', sql: 'ROLLBACK' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'a multi-statement query',
    steps: [
      { as: 'app', sql: 'SELECT 1; SET SESSION AUTHORIZATION postgres; SELECT 2' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'COPY of a query that escalates',
    steps: [
      { as: 'app', sql: `COPY (${ESCALATE}) TO STDOUT` },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'another non-superuser role',
    steps: [
      { as: 'app', sql: 'SET SESSION AUTHORIZATION app2' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'its own role (allowed)',
    steps: [
      { as: 'app', sql: 'SET SESSION AUTHORIZATION app' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'RESET SESSION AUTHORIZATION goes back to the login role',
    steps: [
      { as: 'app', sql: 'RESET SESSION AUTHORIZATION' },
      { as: 'app', sql: WHO },
      { as: 'app', sql: ESCALATE },
    ],
  },
  {
    name: 'SET SESSION AUTHORIZATION DEFAULT',
    steps: [
      { as: 'app', sql: 'SET SESSION AUTHORIZATION DEFAULT' },
      { as: 'app', sql: WHO },
      { as: 'app', sql: ESCALATE },
    ],
  },
  {
    name: 'SET ROLE to a superuser',
    steps: [
      { as: 'app', sql: 'SET ROLE postgres' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: "set_config('role')",
    steps: [
      { as: 'app', sql: "SELECT set_config('role', 'admin', false)" },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'SET ROLE to a granted role, under row-level security',
    steps: [
      { as: 'app', sql: 'SELECT id FROM docs ORDER BY id' },
      { as: 'app', sql: 'SET ROLE viewer' },
      { as: 'app', sql: 'SELECT id, current_user FROM docs ORDER BY id' },
      { as: 'app', sql: 'RESET ROLE' },
      { as: 'app', sql: 'SELECT id, current_user FROM docs ORDER BY id' },
    ],
  },
  {
    name: 'ALTER ROLE ... SUPERUSER',
    steps: [
      { as: 'app', sql: 'ALTER ROLE app SUPERUSER' },
      { as: 'app', sql: 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' },
    ],
  },
  { name: 'CREATE ROLE ... SUPERUSER', steps: [{ as: 'app', sql: 'CREATE ROLE evil SUPERUSER' }] },
  {
    name: 'GRANT a superuser role to itself',
    steps: [
      { as: 'app', sql: 'GRANT postgres TO app' },
      { as: 'app', sql: 'GRANT pg_read_server_files TO app' },
    ],
  },
  { name: 'reading pg_authid', steps: [{ as: 'app', sql: 'SELECT count(*) FROM pg_authid' }] },
  { name: 'a table it was not granted', steps: [{ as: 'app', sql: 'SELECT code FROM secrets' }] },
  {
    name: 'superuser-only settings by SET',
    steps: [
      { as: 'app', sql: 'SET session_replication_role = replica' },
      { as: 'app', sql: 'SHOW session_replication_role' },
    ],
  },
  {
    name: 'superuser-only settings by set_config',
    steps: [
      { as: 'app', sql: "SELECT set_config('zero_damaged_pages', 'on', false)" },
      { as: 'app', sql: "SELECT set_config('lo_compat_privileges', 'on', false)" },
    ],
  },
  {
    name: 'an internal setting',
    steps: [
      { as: 'app', sql: "SELECT set_config('is_superuser', 'on', false)" },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'reading server files',
    steps: [
      { as: 'app', sql: "SELECT pg_read_file('PG_VERSION')" },
      { as: 'app', sql: "SELECT pg_ls_dir('.')" },
    ],
  },
  {
    name: 'COPY to a server file',
    steps: [{ as: 'app', sql: "COPY (SELECT 1) TO '/tmp/pglite-oxide-escalation'" }],
  },
  {
    name: 'an event trigger',
    steps: [
      {
        as: 'app',
        sql: `CREATE FUNCTION pg_temp.et() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$`,
      },
      { as: 'app', sql: 'CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION pg_temp.et()' },
    ],
  },
  {
    name: 'an untrusted language',
    steps: [{ as: 'app', sql: "CREATE FUNCTION evil() RETURNS int LANGUAGE c AS 'libc', 'getpid'" }],
  },
  { name: 'ALTER SYSTEM', steps: [{ as: 'app', sql: "ALTER SYSTEM SET work_mem = '8MB'" }] },
  {
    name: 'giving its table to a superuser',
    steps: [
      { as: 'app', sql: 'CREATE TABLE mine (x int)' },
      { as: 'app', sql: 'ALTER TABLE mine OWNER TO postgres' },
      { as: 'app', sql: 'DROP TABLE mine' },
    ],
  },
  {
    name: 'RESET ALL, then escalating',
    steps: [
      { as: 'app', sql: 'RESET ALL' },
      { as: 'app', sql: ESCALATE },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'DISCARD ALL, then escalating',
    steps: [
      { as: 'app', sql: 'DISCARD ALL' },
      { as: 'app', sql: WHO },
      { as: 'app', sql: 'SET SESSION AUTHORIZATION postgres' },
    ],
  },
  {
    name: 'a failed transaction, then escalating',
    steps: [
      { as: 'app', sql: 'BEGIN' },
      { as: 'app', sql: 'SELECT 1/0' },
      { as: 'app', sql: 'SET SESSION AUTHORIZATION postgres' },
      { as: 'app', sql: 'ROLLBACK' },
      { as: 'app', sql: ESCALATE },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'a rolled back SET ROLE',
    steps: [
      { as: 'app', sql: 'BEGIN' },
      { as: 'app', sql: 'SET ROLE viewer' },
      { as: 'app', sql: 'ROLLBACK' },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: 'after a cancelled statement',
    steps: [
      { as: 'app', sql: 'SET statement_timeout = 50' },
      { as: 'app', sql: 'SELECT pg_sleep(2)' },
      { as: 'app', sql: 'RESET statement_timeout' },
      { as: 'app', sql: ESCALATE },
      { as: 'app', sql: WHO },
    ],
  },
  {
    name: "another connection of the same role, and a superuser's, in turn",
    steps: [
      { as: 'app', sql: ESCALATE },
      { as: 'postgres', sql: WHO },
      { as: 'app#2', sql: WHO },
      { as: 'app#2', sql: 'SET SESSION AUTHORIZATION postgres' },
      { as: 'postgres', sql: 'SET SESSION AUTHORIZATION app' },
      { as: 'app', sql: ESCALATE },
      { as: 'postgres', sql: WHO },
      { as: 'postgres', sql: 'SET SESSION AUTHORIZATION postgres' },
      { as: 'postgres', sql: WHO },
    ],
  },
  {
    name: 'a superuser other than the engine may switch and come back',
    steps: [
      { as: 'admin', sql: 'SET SESSION AUTHORIZATION app' },
      { as: 'admin', sql: WHO },
      { as: 'app', sql: 'SET SESSION AUTHORIZATION admin' },
      { as: 'admin', sql: 'SET SESSION AUTHORIZATION postgres' },
      { as: 'admin', sql: WHO },
      { as: 'admin', sql: 'RESET SESSION AUTHORIZATION' },
      { as: 'admin', sql: WHO },
    ],
  },
  {
    name: "a function of its own ahead of pg_catalog's in search_path, while another client logs in",
    steps: [
      {
        as: 'app',
        sql: `CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE plpgsql AS $$BEGIN BEGIN EXECUTE 'ALTER ROLE app SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN pg_catalog.lower($1); END$$`,
      },
      { as: 'app', sql: 'SET search_path = public, pg_catalog' },
      { as: 'app', sql: "SET work_mem = '8MB'" },
      { as: 'app2', sql: 'SELECT current_user' },
      { as: 'app', sql: "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = 'app'" },
      { as: 'app', sql: 'DROP FUNCTION public.lower(text)' },
    ],
  },
  {
    name: 'RESET SESSION AUTHORIZATION built at run time, then another client in between',
    steps: [
      { as: 'app', sql: "DO $$BEGIN EXECUTE 'RESET SESSION ' || 'AUTHORIZATION'; END$$" },
      { as: 'app', sql: "SET work_mem = '8MB'" },
      { as: 'postgres', sql: WHO },
      { as: 'app2', sql: WHO },
      { as: 'app', sql: WHO },
      { as: 'app', sql: 'ALTER ROLE app CREATEROLE' },
    ],
  },
  {
    name: "another client's WITH HOLD cursor can be neither fetched, listed nor closed",
    steps: [
      { as: 'app', sql: 'DECLARE held CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g' },
      { as: 'app2', sql: 'FETCH held' },
      { as: 'app2', sql: 'SELECT name FROM pg_cursors' },
      { as: 'app2', sql: 'CLOSE held' },
      { as: 'app2', sql: 'CLOSE ALL' },
      { as: 'app2', sql: "DO $$BEGIN EXECUTE 'CLOSE ALL'; END$$" },
      { as: 'admin', sql: 'SELECT count(*) FROM pg_cursors' },
      { as: 'app', sql: 'FETCH held' },
      { as: 'app', sql: 'SELECT name, statement, is_holdable FROM pg_cursors' },
      { as: 'app', sql: 'CLOSE held' },
    ],
  },
  {
    name: "another client's cursor of the same name is its own",
    steps: [
      { as: 'app', sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT 1 AS mine' },
      { as: 'app2', sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT 2 AS mine' },
      { as: 'app', sql: 'FETCH c' },
      { as: 'app2', sql: 'FETCH c' },
    ],
  },
  {
    name: "another client's SQL-level prepared statements, by any path",
    steps: [
      { as: 'app', sql: 'PREPARE q AS SELECT 1 AS one' },
      { as: 'app2', sql: 'EXECUTE q' },
      { as: 'app2', sql: "DO $$BEGIN EXECUTE 'EXECUTE q'; END$$" },
      { as: 'app2', sql: 'SELECT name FROM pg_prepared_statements' },
      { as: 'app2', sql: 'DEALLOCATE q' },
      { as: 'app2', sql: 'DEALLOCATE ALL' },
      { as: 'app2', sql: "DO $$BEGIN EXECUTE 'DEALLOCATE ' || 'ALL'; END$$" },
      { as: 'admin', sql: 'SELECT count(*) FROM pg_prepared_statements' },
      { as: 'app', sql: 'EXECUTE q' },
      { as: 'app', sql: 'SELECT name, statement FROM pg_prepared_statements' },
      { as: 'app2', sql: 'PREPARE q AS SELECT 2 AS two' },
      { as: 'app2', sql: 'EXECUTE q' },
      { as: 'app', sql: 'EXECUTE q' },
    ],
  },
  {
    name: "another client's protocol-level prepared statement of the same name",
    steps: [
      { as: 'app', sql: 'SELECT $1::int + 1 AS mine', values: [1], name: 'stmt' },
      { as: 'app2', sql: 'SELECT name FROM pg_prepared_statements' },
      { as: 'app2', sql: 'SELECT $1::text AS theirs', values: ['x'], name: 'stmt' },
      { as: 'app', sql: 'SELECT name, statement FROM pg_prepared_statements' },
      { as: 'app', sql: 'SELECT $1::int + 1 AS mine', values: [2], name: 'stmt' },
    ],
  },
  {
    name: "a role's temporary table with a trigger is not what a superuser's unqualified name reaches",
    steps: [
      { as: 'postgres', sql: 'CREATE TABLE public.audit (v text)' },
      { as: 'app', sql: 'CREATE TEMP TABLE audit (v text)' },
      {
        as: 'app',
        sql: "CREATE FUNCTION public.trojan() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN BEGIN EXECUTE 'ALTER ROLE app SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN NEW; END$$",
      },
      {
        as: 'app',
        sql: 'CREATE TRIGGER trojan BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION public.trojan()',
      },
      { as: 'postgres', sql: "INSERT INTO audit VALUES ('by the superuser')" },
      { as: 'admin', sql: "INSERT INTO audit VALUES ('by another superuser')" },
      { as: 'postgres', sql: 'SELECT count(*) FROM pg_temp.audit' },
      { as: 'postgres', sql: 'SELECT v FROM public.audit ORDER BY v' },
      { as: 'app', sql: 'SELECT count(*) FROM audit' },
      { as: 'app', sql: "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = 'app'" },
      { as: 'postgres', sql: 'DROP TABLE public.audit' },
      { as: 'postgres', sql: 'DROP FUNCTION public.trojan() CASCADE' },
    ],
  },
  {
    name: 'two clients each have a temporary table of the same name',
    steps: [
      { as: 'app', sql: 'CREATE TEMP TABLE scratch (v int)' },
      { as: 'app2', sql: 'CREATE TEMP TABLE scratch (v text)' },
      { as: 'app', sql: 'INSERT INTO scratch VALUES (1)' },
      { as: 'app2', sql: 'SELECT count(*) FROM scratch' },
      {
        as: 'app2',
        sql: 'SELECT count(*) FROM pg_catalog.pg_class WHERE relname = $1 AND relpersistence = $2',
        values: ['scratch', 't'],
      },
      { as: 'app2', sql: 'DISCARD TEMP' },
      { as: 'app', sql: 'SELECT v FROM scratch' },
      { as: 'app2', sql: 'SELECT count(*) FROM scratch' },
      { as: 'app', sql: 'DROP TABLE scratch' },
    ],
  },
  {
    name: "another client's advisory locks: not taken, not released",
    steps: [
      { as: 'app', sql: 'SELECT pg_try_advisory_lock(1)' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock(1)' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock_shared(1)' },
      { as: 'app2', sql: 'SELECT pg_advisory_unlock(1)' },
      { as: 'app2', sql: 'SELECT pg_advisory_unlock_all()' },
      { as: 'app2', sql: 'DO $$BEGIN PERFORM pg_advisory_unlock_all(); END$$' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock(1)' },
      { as: 'app', sql: 'SELECT pg_try_advisory_lock(1), pg_advisory_unlock(1), pg_advisory_unlock(1)' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock_shared(1)' },
      { as: 'app', sql: 'SELECT pg_try_advisory_lock_shared(1), pg_try_advisory_lock(1)' },
      { as: 'app', sql: 'SELECT pg_advisory_unlock_shared(1), pg_advisory_unlock_shared(1)' },
      { as: 'app', sql: 'SELECT pg_try_advisory_lock(1, 2), pg_try_advisory_lock(2)' },
      {
        as: 'app2',
        sql: 'SELECT pg_try_advisory_lock(1, 2), pg_try_advisory_lock(2, 1), pg_try_advisory_lock(3)',
      },
      { as: 'app', sql: 'SELECT pg_try_advisory_xact_lock(5)' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock(5), pg_try_advisory_xact_lock(3)' },
      { as: 'app2', sql: 'SELECT pg_advisory_unlock_all()' },
      { as: 'app', sql: 'SELECT pg_try_advisory_lock(1), pg_try_advisory_lock(3)' },
      // Waits for a lock another client holds, until lock_timeout.
      { as: 'app2', sql: "SET lock_timeout = '100ms'" },
      { as: 'app2', sql: 'SELECT pg_advisory_lock(1)' },
      { as: 'app2', sql: 'SELECT pg_advisory_lock_shared(3)' },
      { as: 'app2', sql: 'SELECT pg_try_advisory_lock(1)' },
      // A savepoint rolled back releases the transaction locks taken since.
      {
        as: 'app2',
        sql:
          'BEGIN; SAVEPOINT s; SELECT pg_advisory_xact_lock(9); SAVEPOINT t; SELECT pg_advisory_xact_lock(10); ' +
          'RELEASE SAVEPOINT t; ROLLBACK TO SAVEPOINT s; SELECT pg_advisory_xact_lock(11); ' +
          "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1; COMMIT",
      },
    ],
  },
  {
    name: "another client's LISTEN channels: not listed, not ended",
    steps: [
      { as: 'app', sql: 'LISTEN jobs' },
      { as: 'app2', sql: 'LISTEN other' },
      { as: 'app', sql: 'SELECT pg_catalog.pg_listening_channels()' },
      { as: 'app2', sql: "DO $$BEGIN EXECUTE 'UNLISTEN ' || 'jobs'; END$$" },
      { as: 'app2', sql: 'UNLISTEN *' },
      { as: 'app2', sql: 'SELECT pg_catalog.pg_listening_channels()' },
      { as: 'app', sql: 'BEGIN; LISTEN undone; ROLLBACK' },
      { as: 'app', sql: "DO $$BEGIN EXECUTE 'LISTEN ' || 'built'; END$$" },
      { as: 'app', sql: 'SELECT pg_catalog.pg_listening_channels()' },
      { as: 'app#2', sql: 'SELECT pg_catalog.pg_listening_channels()' },
    ],
  },
  {
    name: "another client's custom settings, by any path: not seen, not kept",
    steps: [
      { as: 'app', sql: "SELECT set_config('app.tenant', '7', false)" },
      // Row-level security policies read it so: NULL where the client never set it.
      { as: 'app2', sql: "SELECT current_setting('app.tenant', true) AS tenant" },
      { as: 'app2', sql: 'SHOW app.tenant' },
      { as: 'app2', sql: "SELECT current_setting('app.tenant')" },
      {
        as: 'app',
        sql: "DO $$BEGIN EXECUTE 'SET ' || 'statement_timeout = 1234'; EXECUTE 'SET app.other = ' || '5'; END$$",
      },
      { as: 'app2', sql: "SELECT current_setting('statement_timeout'), current_setting('app.other', true)" },
      { as: 'admin', sql: "SELECT set_config('session_replication_role', 'replica', false)" },
      { as: 'app', sql: "SELECT current_setting('session_replication_role')" },
      {
        as: 'app',
        sql: "SELECT current_setting('app.tenant'), current_setting('app.other'), current_setting('statement_timeout')",
      },
      { as: 'app2', sql: 'RESET app.tenant' },
      { as: 'app2', sql: "SELECT current_setting('app.tenant', true) AS tenant" },
      { as: 'app#2', sql: "SELECT current_setting('app.tenant', true) AS tenant" },
      { as: 'app', sql: 'BEGIN; SET LOCAL app.local = 1; COMMIT' },
      { as: 'app', sql: "SELECT current_setting('app.local', true), current_setting('app.tenant')" },
    ],
  },
  {
    name: 'superuser-only settings at startup are refused for a role',
    steps: [],
    logins: [
      { user: 'app', options: '-c session_replication_role=replica' },
      { user: 'app', options: '-c allow_system_table_mods=on' },
      { user: 'app', options: '-c zero_damaged_pages=on' },
      { user: 'app', options: '-c log_statement=all' },
      { user: 'app', options: '-c lo_compat_privileges=on' },
      { user: 'admin', options: '-c session_replication_role=replica' },
      { user: 'app', options: '-c work_mem=8MB' },
    ],
  },
];

/** What a step gave: its rows, or its SQLSTATE. */
type Outcome = string;

interface Server {
  url: URL;
  close(): Promise<void>;
}

async function runCase(server: Server, testCase: Case): Promise<Outcome[]> {
  const clients = new Map<string, pg.Client>();
  const client = async (key: string): Promise<pg.Client> => {
    let found = clients.get(key);
    if (!found) {
      found = new pg.Client({ connectionString: asUser(server.url.href, key.split('#')[0]!) });
      await found.connect();
      clients.set(key, found);
    }
    return found;
  };
  const outcomes: Outcome[] = [];
  try {
    for (const login of testCase.logins ?? []) {
      const connection = new pg.Client({
        connectionString: asUser(server.url.href, login.user),
        options: login.options,
      });
      try {
        await connection.connect();
        const { rows } = await connection.query(WHO);
        outcomes.push(`in: ${JSON.stringify(rows)}`);
      } catch (error) {
        outcomes.push(`refused: ${(error as { code?: string }).code}`);
      } finally {
        await connection.end().catch(() => {});
      }
    }
    for (const step of testCase.steps) {
      const connection = await client(step.as);
      try {
        const result = await connection.query({ text: step.sql, values: step.values, name: step.name });
        const results = Array.isArray(result) ? result : [result];
        outcomes.push(`${step.sql} -> ${JSON.stringify(results.map((r: pg.QueryResult) => r.rows ?? null))}`);
      } catch (error) {
        outcomes.push(`${step.sql} -> ERROR ${(error as { code?: string }).code}`);
      }
    }
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => {})));
  }
  return outcomes;
}

/** What must be as the setup left it after every case, on both servers. */
const INVARIANTS =
  "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname IN ('app', 'app2', 'viewer', 'evil') ORDER BY 1";

async function invariants(server: Server): Promise<unknown> {
  const client = new pg.Client({ connectionString: server.url.href });
  await client.connect();
  try {
    const roles = (await client.query(INVARIANTS)).rows;
    const members = (
      await client.query(
        "SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname IN ('app', 'app2') ORDER BY 1, 2",
      )
    ).rows;
    const settings = (await client.query("SELECT current_setting('session_replication_role') AS r")).rows;
    return { roles, members, settings };
  } finally {
    await client.end();
  }
}

async function setUp(url: URL): Promise<void> {
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  try {
    await client.query(SETUP);
  } finally {
    await client.end();
  }
}

const proxyKinds: Array<[string, () => Promise<Server>]> = [
  [
    'engine in the serving thread',
    async () => {
      const served = await startServedEngine();
      return { url: new URL(served.proxy.connectionString), close: () => served.close() };
    },
  ],
  [
    'engine thread on a data directory (serve --data)',
    async () => {
      const paths = await installAndInitIn(await tempRoot('pglite-oxide-security-'));
      const engine = await ThreadedEngine.start({
        kind: 'disk',
        runtimeRoot: paths.pgroot,
        pgdata: paths.pgdata,
      });
      let proxy: ThreadedProxyHandle;
      try {
        proxy = await startThreadedProxy(engine, { tcp: true, port: 0, onWarning: () => {} });
      } catch (error) {
        await engine.close();
        throw error;
      }
      return {
        url: new URL(proxy.connectionString),
        close: async () => {
          await proxy.close();
          await engine.close();
        },
      };
    },
  ],
];

let native: NativeServer;
let nativeServer: Server;
const expected = new Map<string, Outcome[]>();
let nativeInvariants: unknown;

beforeAll(async () => {
  const started = await startNativePostgres();
  if (!started)
    throw new Error('These tests need a native PostgreSQL server (Debian: apt-get install postgresql).');
  native = started;
  nativeServer = { url: new URL(native.url), close: () => native.stop() };
  await setUp(nativeServer.url);
  nativeInvariants = await invariants(nativeServer);
  for (const testCase of CASES) expected.set(testCase.name, await runCase(nativeServer, testCase));
  expect(await invariants(nativeServer)).toEqual(nativeInvariants);
}, 120_000);

afterAll(async () => {
  await native?.stop();
});

describe.each(proxyKinds)('privileges as on PostgreSQL: %s', (_kind, start) => {
  let server: Server;

  beforeAll(async () => {
    server = await start();
    await setUp(server.url);
    expect(await invariants(server)).toEqual(nativeInvariants);
  });
  afterAll(() => server?.close());

  it.each(CASES.map((testCase) => [testCase.name, testCase] as const))('%s', async (_name, testCase) => {
    expect(await runCase(server, testCase)).toEqual(expected.get(testCase.name));
    expect(await invariants(server)).toEqual(nativeInvariants);
  });
});
