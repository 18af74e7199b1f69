import pg from 'pg';
import { installAndInitIn, prepareTemplate } from 'pglite-oxide';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';

interface Served {
  port: number;
  close(): Promise<void>;
}

/** `serve` in throwaway mode: the main engine in memory, in a thread of its own. */
async function serveInMemory(): Promise<Served> {
  const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
  const engine = await ThreadedEngine.start({
    kind: 'memory',
    runtimeRoot: template.runtimeRoot,
    pgdata: template.pgdata,
    env: template.env,
    settings: template.settings,
  });
  const proxy = await startThreadedProxy(engine, { tcp: true, port: 0 });
  return { port: proxy.port, close: () => proxy.close() };
}

/** `serve --data` on `root`: every engine on disk, in a thread of its own. */
async function serveOnDisk(root: string): Promise<Served> {
  const paths = await installAndInitIn(root);
  const engine = await ThreadedEngine.start({
    kind: 'disk',
    runtimeRoot: paths.pgroot,
    pgdata: paths.pgdata,
  });
  const proxy = await startThreadedProxy(engine, {
    tcp: true,
    port: 0,
    onWarning: (m: string) => console.log('WARN', m),
  });
  return { port: proxy.port, close: () => proxy.close() };
}

/** A proxy over an engine in this thread, on disk (the toolkit's shape). */
async function serveInThisThread(): Promise<Served> {
  const served = await startServedEngine();
  return { port: served.proxy.port, close: () => served.close() };
}

// The databases of one proxy are one cluster: roles, the list of databases and templates are
// shared, as on a PostgreSQL server, although each database runs on an engine of its own.
describe.each([
  ['in this thread, on disk', serveInThisThread],
  ['in memory (serve)', serveInMemory],
])('one cluster: %s', (_mode, start) => {
  let served: Served;
  const clients: pg.Client[] = [];

  const connect = async (database: string, user = 'postgres', password?: string) => {
    const client = new pg.Client({ host: '127.0.0.1', port: served.port, user, password, database });
    await client.connect();
    clients.push(client);
    return client;
  };
  const rows = async (client: pg.Client, sql: string) => (await client.query(sql)).rows;

  beforeAll(async () => {
    served = await start();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.end().catch(() => {})));
  });
  afterAll(() => served.close());

  it("runs a client library's bootstrap: create user, createdb, alter owner, connect as the user", async () => {
    const admin = await connect('postgres');
    await admin.query("CREATE USER lib_user PASSWORD 'secret'");
    await admin.query('CREATE DATABASE lib_db');
    await admin.query('ALTER DATABASE lib_db OWNER TO lib_user');
    await admin.query('GRANT ALL ON DATABASE lib_db TO lib_user');
    const user = await connect('lib_db', 'lib_user', 'secret');
    expect(await rows(user, 'SELECT current_user AS u, current_database() AS d')).toEqual([
      { u: 'lib_user', d: 'lib_db' },
    ]);
    await user.query('CREATE TABLE owned (id int)');
    expect(
      await rows(
        user,
        "SELECT pg_catalog.pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'lib_db'",
      ),
    ).toEqual([{ owner: 'lib_user' }]);
  });

  it('has roles made, changed and dropped in any database take effect in every other at once', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE DATABASE roles_elsewhere');
    const other = await connect('roles_elsewhere');
    // Opened before the role exists.
    await admin.query("CREATE ROLE late_role LOGIN PASSWORD 'pw1'");
    const late = await connect('roles_elsewhere', 'late_role', 'pw1');
    expect(await rows(late, 'SELECT current_user AS u')).toEqual([{ u: 'late_role' }]);
    await late.end();
    // Made in the other database, seen in the main one.
    await other.query(
      "CREATE ROLE from_other LOGIN PASSWORD 'pw2'; COMMENT ON ROLE from_other IS 'made elsewhere'",
    );
    const seen = await connect('postgres', 'from_other', 'pw2');
    expect(
      await rows(
        seen,
        "SELECT pg_catalog.shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = 'from_other'",
      ),
    ).toEqual([{ c: 'made elsewhere' }]);
    await seen.end();
    // Its LOGIN taken away and then the role dropped, in the main database.
    await admin.query('ALTER ROLE late_role NOLOGIN');
    await expect(connect('roles_elsewhere', 'late_role')).rejects.toMatchObject({
      code: '28000',
      message: 'role "late_role" is not permitted to log in',
    });
    await admin.query('DROP ROLE late_role');
    await expect(connect('roles_elsewhere', 'late_role')).rejects.toMatchObject({
      code: '28000',
      message: 'role "late_role" does not exist',
    });
    expect(await rows(other, "SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'late_role'")).toEqual([
      { n: 0 },
    ]);
  });

  it('starts a login with the settings ALTER ROLE and ALTER DATABASE gave, made in another database', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE DATABASE tuned');
    await admin.query("CREATE ROLE tuned_user LOGIN; ALTER DATABASE tuned SET timezone = 'Asia/Tokyo'");
    await admin.query('ALTER ROLE tuned_user IN DATABASE tuned SET search_path = tuned_schema, public');
    await admin.query("ALTER ROLE tuned_user SET application_name = 'from_role'");
    const user = await connect('tuned', 'tuned_user');
    expect(await rows(user, 'SHOW search_path')).toEqual([{ search_path: 'tuned_schema, public' }]);
    expect(await rows(user, 'SHOW timezone')).toEqual([{ TimeZone: 'Asia/Tokyo' }]);
    // RESET goes back to them, as on a server; elsewhere only the role's own apply.
    await user.query("SET timezone = 'UTC'; RESET timezone");
    expect(await rows(user, 'SHOW timezone')).toEqual([{ TimeZone: 'Asia/Tokyo' }]);
    // The engine's own superuser too, in the main database and in another.
    await admin.query("ALTER ROLE postgres IN DATABASE tuned SET work_mem = '3MB'");
    await admin.query("ALTER ROLE postgres SET statement_timeout = '42s'");
    expect(await rows(await connect('tuned'), 'SHOW work_mem')).toEqual([{ work_mem: '3MB' }]);
    expect(await rows(await connect('postgres'), 'SHOW statement_timeout')).toEqual([
      { statement_timeout: '42s' },
    ]);
    await admin.query('ALTER ROLE postgres RESET ALL; ALTER ROLE postgres IN DATABASE tuned RESET ALL');
    const elsewhere = await connect('postgres', 'tuned_user');
    expect(await rows(elsewhere, 'SHOW search_path')).not.toEqual([{ search_path: 'tuned_schema, public' }]);
    expect(await rows(elsewhere, 'SHOW application_name')).toEqual([{ application_name: 'from_role' }]);
  });

  it('refuses to drop a role that objects of another database depend on, as PostgreSQL does', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE ROLE dep_owner LOGIN');
    await admin.query('CREATE DATABASE dep_db');
    const elsewhere = await connect('dep_db');
    await elsewhere.query('CREATE TABLE owned (a int)');
    await elsewhere.query('ALTER TABLE owned OWNER TO dep_owner');
    await expect(admin.query('DROP ROLE dep_owner')).rejects.toMatchObject({
      code: '2BP01',
      message: 'role "dep_owner" cannot be dropped because some objects depend on it',
      detail: '1 object in database dep_db',
    });
    await elsewhere.query('DROP TABLE owned');
    await admin.query('CREATE DATABASE dep_owned OWNER dep_owner');
    const other = await connect('template1');
    await expect(other.query('DROP ROLE dep_owner')).rejects.toMatchObject({
      code: '2BP01',
      detail: 'owner of database dep_owned',
    });
    await other.query('DROP DATABASE dep_owned');
    await other.query('DROP ROLE dep_owner');
    expect(
      await rows(elsewhere, "SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'dep_owner'"),
    ).toEqual([{ n: 0 }]);
  });

  it('enforces CONNECT and the connection limits of roles and databases, set from any database', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE DATABASE limited CONNECTION LIMIT 1');
    await admin.query('CREATE ROLE lim LOGIN CONNECTION LIMIT 1; CREATE ROLE outsider LOGIN');
    const other = await connect('template1');
    await other.query(
      'REVOKE CONNECT ON DATABASE limited FROM PUBLIC; GRANT CONNECT ON DATABASE limited TO lim',
    );
    await expect(connect('limited', 'outsider')).rejects.toMatchObject({
      code: '42501',
      message: 'permission denied for database "limited"',
      detail: 'User does not have CONNECT privilege.',
    });
    await connect('limited', 'lim');
    await expect(connect('postgres', 'lim')).rejects.toMatchObject({
      code: '53300',
      message: 'too many connections for role "lim"',
    });
    await other.query('ALTER ROLE lim CONNECTION LIMIT -1');
    await expect(connect('limited', 'lim')).rejects.toMatchObject({
      code: '53300',
      message: 'too many connections for database "limited"',
    });
    // Superusers are not counted against either limit.
    expect(await rows(await connect('limited'), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await admin.query('ALTER DATABASE limited ALLOW_CONNECTIONS false');
    await expect(connect('limited')).rejects.toMatchObject({
      code: '55000',
      message: 'database "limited" is not currently accepting connections',
    });
  });

  it('copies a template as it is now, from a connection to template1, once per test', async () => {
    const admin = await connect('template1');
    await admin.query('CREATE DATABASE tmpl');
    const migrate = await connect('tmpl');
    await migrate.query(
      "CREATE TABLE users (id int primary key, name text); INSERT INTO users VALUES (1, 'ada'), (2, 'bob')",
    );
    await migrate.query('ALTER DATABASE tmpl IS_TEMPLATE true');
    await migrate.end();
    expect(await rows(admin, "SELECT datistemplate AS t FROM pg_database WHERE datname = 'tmpl'")).toEqual([
      { t: true },
    ]);
    for (const n of [1, 2]) {
      await admin.query(`CREATE DATABASE test_${n} TEMPLATE tmpl`);
      const test = await connect(`test_${n}`);
      expect(await rows(test, 'SELECT name FROM users ORDER BY id')).toEqual([
        { name: 'ada' },
        { name: 'bob' },
      ]);
      await test.query('DELETE FROM users');
      await test.end();
      await admin.query(`DROP DATABASE test_${n}`);
    }
    const listed = await rows(admin, "SELECT datname FROM pg_database WHERE datname LIKE 'test_%'");
    expect(listed).toEqual([]);
    await admin.end();
  });

  it("copies with PostgreSQL's options and permission checks, made as the client", async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE ROLE maker LOGIN CREATEDB');
    await admin.query('CREATE DATABASE private_src');
    await admin.query('CREATE DATABASE shared_src IS_TEMPLATE true');
    const maker = await connect('template1', 'maker');
    await expect(maker.query('CREATE DATABASE stolen TEMPLATE private_src')).rejects.toMatchObject({
      code: '42501',
      message: 'permission denied to copy database "private_src"',
    });
    await maker.query(
      'CREATE DATABASE mine TEMPLATE shared_src STRATEGY FILE_COPY ALLOW_CONNECTIONS true CONNECTION LIMIT 7',
    );
    expect(
      await rows(
        admin,
        'SELECT pg_catalog.pg_get_userbyid(datdba) AS owner, datconnlimit AS lim, datistemplate AS t ' +
          "FROM pg_database WHERE datname = 'mine'",
      ),
    ).toEqual([{ owner: 'maker', lim: 7, t: false }]);
    await admin.query('CREATE ROLE plain LOGIN');
    const plain = await connect('template1', 'plain');
    await expect(plain.query('CREATE DATABASE nope')).rejects.toMatchObject({
      code: '42501',
      message: 'permission denied to create database',
    });
  });

  it('refuses to copy a database other clients are connected to, as PostgreSQL does', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE DATABASE busy_src');
    await connect('busy_src');
    await expect(admin.query('CREATE DATABASE busy_copy TEMPLATE busy_src')).rejects.toMatchObject({
      code: '55006',
      message: 'source database "busy_src" is being accessed by other users',
      detail: 'There is 1 other session using the database.',
    });
  });

  it('renames a database from another, which then opens under its new name with its data', async () => {
    const admin = await connect('template1');
    await admin.query('CREATE DATABASE ren_old');
    const old = await connect('ren_old');
    await old.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')");
    // Its own database: PostgreSQL's refusal, from its engine.
    await expect(old.query('ALTER DATABASE ren_old RENAME TO ren_x')).rejects.toMatchObject({
      code: '0A000',
    });
    await old.end();
    await admin.query('ALTER DATABASE ren_old RENAME TO ren_new');
    const renamed = await connect('ren_new');
    expect(await rows(renamed, 'SELECT current_database() AS d, v FROM t')).toEqual([
      { d: 'ren_new', v: 'kept' },
    ]);
    await expect(connect('ren_old')).rejects.toMatchObject({ code: '3D000' });
    // The proxy's own database stays while it runs.
    await expect(admin.query('ALTER DATABASE postgres RENAME TO elsewhere')).rejects.toMatchObject({
      code: '55006',
    });
    // A database never opened, renamed by a DO block's EXECUTE, and dropped the same way.
    await admin.query('CREATE DATABASE ren_cold');
    await admin.query("DO $$BEGIN EXECUTE 'ALTER DATABASE ren_cold RENAME TO ' || 'ren_warm'; END$$");
    expect(await rows(await connect('ren_warm'), 'SELECT current_database() AS d')).toEqual([
      { d: 'ren_warm' },
    ]);
  });

  it('creates, renames and drops databases through the extended protocol (postgres.js)', async () => {
    const admin = await connect('postgres');
    await admin.query('CREATE DATABASE ext_src');
    const source = await connect('ext_src');
    await source.query("CREATE TABLE t (v text); INSERT INTO t VALUES ('copied')");
    await source.end();
    const sql = postgres({
      host: '127.0.0.1',
      port: served.port,
      user: 'postgres',
      database: 'template1',
      max: 1,
    });
    try {
      await sql`CREATE DATABASE ${sql('ext_copy')} TEMPLATE ${sql('ext_src')}`;
      await sql`ALTER DATABASE ${sql('ext_copy')} RENAME TO ${sql('ext_renamed')}`;
      const copy = await connect('ext_renamed');
      expect(await rows(copy, 'SELECT v FROM t')).toEqual([{ v: 'copied' }]);
      await copy.end();
      await sql`DROP DATABASE ${sql('ext_renamed')}`;
      await expect(connect('ext_renamed')).rejects.toMatchObject({ code: '3D000' });
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  it('copies the main database with its tables, from another database', async () => {
    const main = await connect('postgres');
    await main.query("CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('from main')");
    await main.end();
    const admin = await connect('template1');
    await admin.query('CREATE DATABASE main_copy TEMPLATE postgres');
    await admin.end();
    const copy = await connect('main_copy');
    expect(await rows(copy, 'SELECT v FROM kept')).toEqual([{ v: 'from main' }]);
    await copy.end();
  });
});

describe('one cluster through restarts (serve --data)', () => {
  it('keeps every database, with the roles as the cluster has them now', async () => {
    const root = await tempRoot();
    let served = await serveOnDisk(root);
    const connect = async (database: string, user = 'postgres') => {
      const client = new pg.Client({ host: '127.0.0.1', port: served.port, user, database });
      await client.connect();
      return client;
    };
    try {
      const admin = await connect('postgres');
      await admin.query('CREATE DATABASE app');
      const app = await connect('app');
      await app.query('CREATE ROLE made_in_app LOGIN; CREATE TABLE t (v int); INSERT INTO t VALUES (7)');
      await app.query('GRANT SELECT ON t TO made_in_app');
      await app.end();
      await admin.query('CREATE ROLE made_in_main LOGIN');
      await admin.end();
      await served.close();
      served = await serveOnDisk(root);
      for (const database of ['postgres', 'app']) {
        for (const user of ['made_in_app', 'made_in_main']) {
          const client = await connect(database, user);
          expect((await client.query('SELECT current_user AS u')).rows).toEqual([{ u: user }]);
          await client.end();
        }
      }
      const reader = await connect('app', 'made_in_app');
      expect((await reader.query('SELECT v FROM t')).rows).toEqual([{ v: 7 }]);
      await reader.end();
      // Renamed, it is found under its new name after a restart.
      const renamer = await connect('template1');
      await renamer.query('ALTER DATABASE app RENAME TO app_renamed');
      await renamer.end();
      await served.close();
      served = await serveOnDisk(root);
      const renamed = await connect('app_renamed', 'made_in_app');
      expect((await renamed.query('SELECT current_database() AS d, v FROM t')).rows).toEqual([
        { d: 'app_renamed', v: 7 },
      ]);
      await renamed.end();
      await expect(connect('app')).rejects.toMatchObject({ code: '3D000' });
    } finally {
      await served.close();
    }
  });
});
