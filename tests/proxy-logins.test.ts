import pg from 'pg';
import { installAndInitIn, prepareTemplate } from 'pglite-oxide';
import { afterEach, describe, expect, it } from 'vitest';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';
import { waitFor } from './helpers/wait-for.js';

/** A proxy in front of an engine in this thread, or one in a thread of its own (serve, run). */
const SERVERS = {
  'engine in this thread': async () => {
    const served = await startServedEngine({ startupTimeoutMs: 3_000 });
    return { port: served.proxy.port, close: () => served.close() };
  },
  'engine in a thread of its own, in memory': async () => {
    const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
    const engine = await ThreadedEngine.start({
      kind: 'memory',
      runtimeRoot: template.runtimeRoot,
      pgdata: template.pgdata,
      env: template.env,
      settings: template.settings,
    });
    const proxy = await startThreadedProxy(engine, { tcp: true, port: 0, startupTimeoutMs: 3_000 });
    return { port: proxy.port, close: () => proxy.close() };
  },
  'engine in a thread of its own, on disk': async () => {
    const paths = await installAndInitIn(await tempRoot('pglite-oxide-logins-'));
    const engine = await ThreadedEngine.start({
      kind: 'disk',
      runtimeRoot: paths.pgroot,
      pgdata: paths.pgdata,
    });
    const proxy = await startThreadedProxy(engine, { tcp: true, port: 0, startupTimeoutMs: 3_000 });
    return { port: proxy.port, close: () => proxy.close() };
  },
};

// A login never waits for the engine: roles are answered from the proxy's copy of them, which the
// engine has read again whenever roles changed, by any path.
describe.each(Object.entries(SERVERS))('logins, %s', (_name, start) => {
  const clients: pg.Client[] = [];
  let close: (() => Promise<void>) | undefined;

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.end().catch(() => {})));
    await close?.();
  });

  it('log in while another client holds a transaction open, and see every committed change of roles', async () => {
    const server = await start();
    close = server.close;
    const connect = async (user: string, options?: string) => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port: server.port,
        user,
        database: 'postgres',
        options,
      });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    const admin = await connect('postgres');
    await admin.query(`
      CREATE TABLE jobs (id int);
      DO $$BEGIN EXECUTE 'CREATE ROLE ' || 'built_at_run_time LOGIN'; END$$;
      CREATE ROLE tuner LOGIN;
      CREATE ROLE doomed LOGIN;
    `);

    // The holder sits in a transaction with a lock taken: the engine is its own until it ends.
    const holder = await connect('postgres');
    await holder.query('BEGIN; LOCK TABLE jobs; CREATE ROLE not_yet LOGIN');
    const app = await connect('built_at_run_time');
    // Not committed: a server does not know the role either.
    await expect(connect('not_yet')).rejects.toMatchObject({
      code: '28000',
      message: 'role "not_yet" does not exist',
    });
    await expect(connect('tuner', '-c zero_damaged_pages=on')).rejects.toMatchObject({
      code: '42501',
      message: 'permission denied to set parameter "zero_damaged_pages"',
    });

    // The logged-in client's first query waits like any other, and is shown waiting.
    const appPid = (app as unknown as { processID: number }).processID;
    const first = app.query('SELECT current_user AS me');
    await waitFor(async () => {
      const { rows } = await holder.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [
        appPid,
      ]);
      return rows[0]?.wait_event_type === 'Lock';
    });
    await holder.query('COMMIT');
    expect((await first).rows).toEqual([{ me: 'built_at_run_time' }]);
    await connect('not_yet');

    // Changes by other paths: a GRANT of SET on a parameter, a DROP, a superuser's catalog update.
    await admin.query('GRANT SET ON PARAMETER zero_damaged_pages TO tuner');
    await admin.query('DROP ROLE doomed');
    await admin.query("UPDATE pg_authid SET rolcanlogin = false WHERE rolname = 'not_yet'");
    await holder.query('BEGIN; LOCK TABLE jobs');
    const tuner = await connect('tuner', '-c zero_damaged_pages=on');
    await expect(connect('doomed')).rejects.toMatchObject({
      code: '28000',
      message: 'role "doomed" does not exist',
    });
    await expect(connect('not_yet')).rejects.toMatchObject({
      code: '28000',
      message: 'role "not_yet" is not permitted to log in',
    });
    // A change not committed is not seen, and one rolled back never is.
    await holder.query("DO $$BEGIN EXECUTE 'ALTER ROLE tuner NOLOGIN'; END$$");
    await connect('tuner');
    await holder.query('ROLLBACK');
    await connect('tuner');
    expect((await tuner.query('SHOW zero_damaged_pages')).rows).toEqual([{ zero_damaged_pages: 'on' }]);
  });
});
