import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { startProxy } from 'pglite-oxide';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { RawClient } from './helpers/raw-client.js';

const run = promisify(execFile);

// Clients log in as any role of the database that may log in, and their units run as that role.
describe('roles', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;

  const connect = async (user: string, password?: string, port = served.proxy.port) => {
    const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
    await client.connect();
    return client;
  };

  beforeAll(async () => {
    served = await startServedEngine();
    const admin = await connect('postgres');
    await admin.query(`
      CREATE ROLE app LOGIN;
      CREATE ROLE reader;
      CREATE ROLE locked;
      CREATE ROLE with_password LOGIN PASSWORD 'its own';
      CREATE TABLE secrets (code text);
      INSERT INTO secrets VALUES ('s3');
      CREATE TABLE notes (body text);
      INSERT INTO notes VALUES ('hello');
      GRANT SELECT ON notes TO app;
      GRANT SELECT ON secrets TO reader;
      GRANT reader TO postgres;
    `);
    await admin.end();
  });
  afterAll(() => served.close());

  it("runs a role's queries as that role, with its privileges, while other clients keep theirs", async () => {
    const app = await connect('app');
    const admin = await connect('postgres');
    try {
      for (let turn = 0; turn < 2; turn++) {
        expect((await app.query('SELECT current_user, session_user')).rows).toEqual([
          { current_user: 'app', session_user: 'app' },
        ]);
        expect((await app.query('SELECT body FROM notes')).rows).toEqual([{ body: 'hello' }]);
        await expect(app.query('SELECT code FROM secrets')).rejects.toMatchObject({
          code: '42501',
          message: 'permission denied for table secrets',
        });
        expect((await admin.query('SELECT current_user, code FROM secrets')).rows).toEqual([
          { current_user: 'postgres', code: 's3' },
        ]);
      }
    } finally {
      await app.end();
      await admin.end();
    }
  });

  it('tells a role it logged in as what a server tells it, and psql and postgres.js connect as it too', async () => {
    const raw = await RawClient.connect(served.proxy.port);
    raw.send(serialize.startup({ user: 'app', database: 'postgres' }));
    const parameters = Object.fromEntries(
      (await raw.untilReady())
        .filter((message) => message.name === 'parameterStatus')
        .map((message) => [message.parameterName, message.parameterValue]),
    );
    raw.end();
    expect(parameters).toMatchObject({ session_authorization: 'app', is_superuser: 'off' });
    const app = await connect('app');
    try {
      expect((await app.query('SHOW session_authorization')).rows).toEqual([
        { session_authorization: 'app' },
      ]);
      expect((await app.query('SHOW is_superuser')).rows).toEqual([{ is_superuser: 'off' }]);
    } finally {
      await app.end();
    }
    const { stdout } = await run('psql', [
      `postgresql://app@127.0.0.1:${served.proxy.port}/postgres`,
      '-Atc',
      'SELECT current_user',
    ]);
    expect(stdout.trim()).toBe('app');
    const sql = postgres(`postgresql://app@127.0.0.1:${served.proxy.port}/postgres`, { max: 1 });
    try {
      expect(await sql`SELECT current_user AS who`).toEqual([{ who: 'app' }]);
    } finally {
      await sql.end();
    }
  });

  it("keeps each client's SET ROLE its own", async () => {
    const a = await connect('postgres');
    const b = await connect('postgres');
    try {
      await a.query('SET ROLE reader');
      for (let turn = 0; turn < 2; turn++) {
        expect((await a.query('SELECT current_user')).rows).toEqual([{ current_user: 'reader' }]);
        expect((await b.query('SELECT current_user')).rows).toEqual([{ current_user: 'postgres' }]);
      }
      await a.query('RESET ROLE');
      expect((await a.query('SELECT current_user')).rows).toEqual([{ current_user: 'postgres' }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('refuses roles that do not exist or may not log in, in the words of PostgreSQL', async () => {
    await expect(connect('nobody')).rejects.toMatchObject({
      code: '28000',
      message: 'role "nobody" does not exist',
    });
    await expect(connect('locked')).rejects.toMatchObject({
      code: '28000',
      message: 'role "locked" is not permitted to log in',
    });
  });

  it("checks a role's own password when it has one, and the proxy's password otherwise", async () => {
    const proxy = await startProxy({
      runtime: served.runtime,
      port: 0,
      password: 'proxy pw',
      authFailureDelayMs: 0,
    });
    try {
      const app = await connect('app', 'proxy pw', proxy.port);
      expect((await app.query('SELECT current_user')).rows).toEqual([{ current_user: 'app' }]);
      await app.end();
      const own = await connect('with_password', 'its own', proxy.port);
      expect((await own.query('SELECT current_user')).rows).toEqual([{ current_user: 'with_password' }]);
      await own.end();
      await expect(connect('with_password', 'proxy pw', proxy.port)).rejects.toMatchObject({ code: '28P01' });
      // An unknown role fails as a wrong password does: a client cannot tell which roles exist.
      await expect(connect('nobody', 'proxy pw', proxy.port)).rejects.toMatchObject({
        code: '28P01',
        message: 'password authentication failed for user "nobody"',
      });
    } finally {
      await proxy.close();
    }
  });
});
