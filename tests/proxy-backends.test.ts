import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installAndInitIn } from '../src/install/install.js';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { asUser } from './helpers/pg-query.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { tempRoot } from './helpers/temp-root.js';
import { waitFor } from './helpers/wait-for.js';

// Each client looks like a backend of its own: the pid it got at login is its pg_backend_pid(),
// and its application_name is its own setting, whatever other clients run in between.
describe('each client is a backend', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;
  const connect = async (applicationName?: string) => {
    const client = new pg.Client({
      connectionString: served.proxy.connectionString,
      application_name: applicationName,
    });
    // A client another one terminates hears it as an error event.
    client.on('error', () => {});
    await client.connect();
    return client;
  };

  beforeAll(async () => {
    served = await startServedEngine();
  });
  afterAll(() => served.close());

  it("answers pg_backend_pid() with the pid of the client's BackendKeyData, by any path", async () => {
    const first = await connect();
    const second = await connect();
    try {
      const pidOf = async (client: pg.Client, sql: string | pg.QueryConfig) =>
        Number(Object.values((await client.query(sql)).rows[0])[0]);
      const processId = (client: pg.Client) => (client as unknown as { processID: number }).processID;
      expect(processId(first)).not.toBe(processId(second));
      for (let turn = 0; turn < 2; turn++) {
        expect(await pidOf(first, 'SELECT pg_backend_pid()')).toBe(processId(first));
        expect(await pidOf(second, 'SELECT pg_backend_pid()')).toBe(processId(second));
      }
      await first.query(
        'CREATE FUNCTION my_pid() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN pg_backend_pid(); END$$',
      );
      expect(await pidOf(second, 'SELECT my_pid()')).toBe(processId(second));
      expect(await pidOf(first, { text: 'SELECT pg_backend_pid() + $1::int', values: [0] })).toBe(
        processId(first),
      );
    } finally {
      await first.end();
      await second.end();
    }
  });

  it("keeps each client's application_name, from startup and from SET", async () => {
    const api = await connect('api');
    const worker = await connect('worker');
    const unnamed = await connect();
    try {
      const name = async (client: pg.Client) =>
        (await client.query("SELECT current_setting('application_name') AS n")).rows[0].n;
      expect(await name(api)).toBe('api');
      expect(await name(worker)).toBe('worker');
      expect(await name(unnamed)).toBe('');
      await worker.query("SET application_name = 'worker-2'");
      expect(await name(api)).toBe('api');
      expect(await name(worker)).toBe('worker-2');
      await worker.query('RESET application_name');
      expect(await name(worker)).toBe('worker');
    } finally {
      await api.end();
      await worker.end();
      await unnamed.end();
    }
  });

  describe('pg_stat_activity', () => {
    const pidOf = (client: pg.Client) => (client as unknown as { processID: number }).processID;
    const activity = async (client: pg.Client) =>
      (
        await client.query(`
          SELECT pid, datname, usename, application_name, client_addr, client_port > 0 AS tcp,
                 state, wait_event_type, wait_event, query, backend_type,
                 backend_start <= query_start AS started_first, xact_start IS NOT NULL AS in_xact
          FROM pg_stat_activity ORDER BY pid`)
      ).rows;

    it('has one row a client: its pid, role, application, state, query and what it waits for', async () => {
      const api = await connect('api');
      const worker = await connect('worker');
      const queued = await connect('queued');
      try {
        await api.query('SELECT 41 + 1');
        await worker.query('BEGIN');
        // Another client's query waits for the engine while the worker's transaction holds it.
        const waiting = queued.query('SELECT 2 AS later');
        const common = { datname: 'postgres', usename: 'postgres', client_addr: '127.0.0.1', tcp: true };
        await waitFor(async () => (await activity(worker)).some((row) => row.wait_event === 'engine'));
        expect(await activity(worker)).toEqual([
          {
            ...common,
            pid: pidOf(api),
            application_name: 'api',
            state: 'idle',
            wait_event_type: 'Client',
            wait_event: 'ClientRead',
            query: 'SELECT 41 + 1',
            backend_type: 'client backend',
            started_first: true,
            in_xact: false,
          },
          {
            ...common,
            pid: pidOf(worker),
            application_name: 'worker',
            state: 'active',
            wait_event_type: null,
            wait_event: null,
            query: expect.stringContaining('FROM pg_stat_activity ORDER BY pid'),
            backend_type: 'client backend',
            started_first: true,
            in_xact: true,
          },
          {
            ...common,
            pid: pidOf(queued),
            application_name: 'queued',
            state: 'active',
            wait_event_type: 'Lock',
            wait_event: 'engine',
            query: 'SELECT 2 AS later',
            backend_type: 'client backend',
            started_first: true,
            in_xact: true,
          },
        ]);
        await worker.query('COMMIT');
        expect((await waiting).rows).toEqual([{ later: 2 }]);
        const rows = await activity(api);
        expect(rows.find((row) => row.pid === pidOf(worker))).toMatchObject({
          state: 'idle',
          query: 'COMMIT',
        });
        // By pid, as pg_stat_get_activity(pid) answers.
        const { rows: own } = await worker.query(
          'SELECT pid FROM pg_stat_get_activity(pg_backend_pid()) UNION ALL SELECT pid FROM pg_stat_get_activity(-1)',
        );
        expect(own).toEqual([{ pid: pidOf(worker) }]);
      } finally {
        for (const client of [api, worker, queued]) await client.end();
      }
    });

    it("lets a pool end a client it finds in pg_stat_activity, and hides other roles' queries", async () => {
      const admin = await connect();
      await admin.query(
        'CREATE ROLE watcher LOGIN; CREATE ROLE stats_reader LOGIN; GRANT pg_read_all_stats TO stats_reader',
      );
      const victim = await connect('victim');
      const watcher = new pg.Client({ connectionString: asUser(served.proxy.connectionString, 'watcher') });
      const reader = new pg.Client({
        connectionString: asUser(served.proxy.connectionString, 'stats_reader'),
      });
      try {
        await watcher.connect();
        await reader.connect();
        await victim.query('SELECT 1 AS secret');
        const seen = async (client: pg.Client) =>
          (
            await client.query('SELECT usename, state, query FROM pg_stat_activity WHERE pid = $1', [
              pidOf(victim),
            ])
          ).rows;
        expect(await seen(watcher)).toEqual([
          { usename: 'postgres', state: null, query: '<insufficient privilege>' },
        ]);
        expect(await seen(reader)).toEqual([
          { usename: 'postgres', state: 'idle', query: 'SELECT 1 AS secret' },
        ]);
        const gone = new Promise<void>((resolve) => victim.once('end', () => resolve()));
        const { rows } = await admin.query(
          "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = 'victim'",
        );
        expect(rows).toEqual([{ t: true }]);
        await gone;
        await waitFor(async () => (await seen(admin)).length === 0);
      } finally {
        for (const client of [admin, victim, watcher, reader]) await client.end().catch(() => {});
      }
    });
  });

  describe('pg_cancel_backend and pg_terminate_backend by pid', () => {
    const asRole = async (user: string) => {
      const client = new pg.Client({ connectionString: asUser(served.proxy.connectionString, user) });
      client.on('error', () => {});
      await client.connect();
      return client;
    };
    const pid = (client: pg.Client) => (client as unknown as { processID: number }).processID;
    const ended = (client: pg.Client) => new Promise<void>((resolve) => client.once('end', () => resolve()));

    beforeAll(async () => {
      const admin = await connect();
      await admin.query(`
        CREATE ROLE app LOGIN; CREATE ROLE app2 LOGIN; CREATE ROLE signaller LOGIN;
        GRANT pg_signal_backend TO signaller;
      `);
      await admin.end();
    });

    it("ends the client whose pid it names, as a pool's 'kill and reconnect' expects", async () => {
      const admin = await connect();
      const victim = await connect();
      try {
        const gone = ended(victim);
        const { rows } = await admin.query('SELECT pg_terminate_backend($1) AS done', [pid(victim)]);
        expect(rows).toEqual([{ done: true }]);
        await gone;
        await expect(victim.query('SELECT 1')).rejects.toThrow();
        // The one who asked goes on.
        expect((await admin.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
      } finally {
        await admin.end();
        await victim.end().catch(() => {});
      }
    });

    it('answers false, with a warning, for a pid that is no client', async () => {
      const admin = await connect();
      try {
        const notices: string[] = [];
        admin.on('notice', (notice) => notices.push(notice.message ?? ''));
        const { rows } = await admin.query('SELECT pg_terminate_backend(1) AS t, pg_cancel_backend(2) AS c');
        expect(rows).toEqual([{ t: false, c: false }]);
        expect(notices).toEqual([
          'PID 1 is not a PostgreSQL backend process',
          'PID 2 is not a PostgreSQL backend process',
        ]);
      } finally {
        await admin.end();
      }
    });

    it("checks PostgreSQL's permissions: own role, pg_signal_backend, never a superuser's client", async () => {
      const superuser = await connect();
      const app = await asRole('app');
      const appAgain = await asRole('app');
      const app2 = await asRole('app2');
      const signaller = await asRole('signaller');
      try {
        await expect(app.query('SELECT pg_terminate_backend($1)', [pid(superuser)])).rejects.toMatchObject({
          code: '42501',
          message: 'permission denied to terminate process',
          detail:
            'Only roles with the SUPERUSER attribute may terminate processes of roles with the SUPERUSER attribute.',
        });
        await expect(app.query('SELECT pg_cancel_backend($1)', [pid(app2)])).rejects.toMatchObject({
          code: '42501',
          message: 'permission denied to cancel query',
        });
        // Built at run time, the same check.
        await expect(
          app.query(`DO $$BEGIN PERFORM pg_terminate_backend(${pid(app2)}); END$$`),
        ).rejects.toMatchObject({ code: '42501' });
        await expect(
          signaller.query('SELECT pg_terminate_backend($1)', [pid(superuser)]),
        ).rejects.toMatchObject({
          code: '42501',
        });
        const appAgainGone = ended(appAgain);
        expect((await app.query('SELECT pg_terminate_backend($1) AS t', [pid(appAgain)])).rows).toEqual([
          { t: true },
        ]);
        await appAgainGone;
        const app2Gone = ended(app2);
        expect((await signaller.query('SELECT pg_terminate_backend($1) AS t', [pid(app2)])).rows).toEqual([
          { t: true },
        ]);
        await app2Gone;
        expect((await superuser.query('SELECT 1 AS alive')).rows).toEqual([{ alive: 1 }]);
      } finally {
        for (const client of [superuser, app, appAgain, app2, signaller]) await client.end().catch(() => {});
      }
    });

    it("cancels a client's wait for the engine with 57014", async () => {
      const holder = await connect();
      const waiter = await connect();
      try {
        await holder.query('BEGIN');
        const waiting = waiter.query('SELECT 1');
        // The waiter's query is queued behind the holder's open transaction.
        await new Promise((resolve) => setImmediate(resolve));
        expect((await holder.query('SELECT pg_cancel_backend($1) AS c', [pid(waiter)])).rows).toEqual([
          { c: true },
        ]);
        await expect(waiting).rejects.toMatchObject({ code: '57014' });
        await holder.query('COMMIT');
        expect((await waiter.query('SELECT 2 AS again')).rows).toEqual([{ again: 2 }]);
      } finally {
        await holder.end();
        await waiter.end();
      }
    });
  });

  it("shows each lock under its holder's pid in pg_locks: the running transaction's, every client's advisory ones", async () => {
    const holder = await connect();
    const worker = await connect();
    const pidOf = (client: pg.Client) => (client as unknown as { processID: number }).processID;
    try {
      await holder.query('SELECT pg_advisory_lock(7), pg_advisory_lock_shared(1, 2)');
      await worker.query('CREATE TABLE IF NOT EXISTS locked_here (id int)');
      await worker.query('BEGIN');
      await worker.query('LOCK TABLE locked_here IN SHARE MODE');
      const { rows } = await worker.query(`
        SELECT l.locktype, l.pid, l.mode, l.classid::int8, l.objid::int8, l.objsubid, l.granted
          FROM pg_locks l
         WHERE l.locktype = 'advisory' OR l.relation = 'locked_here'::regclass
         ORDER BY l.locktype, l.objid`);
      expect(rows).toEqual([
        {
          locktype: 'advisory',
          pid: pidOf(holder),
          mode: 'ShareLock',
          classid: '1',
          objid: '2',
          objsubid: 2,
          granted: true,
        },
        {
          locktype: 'advisory',
          pid: pidOf(holder),
          mode: 'ExclusiveLock',
          classid: '0',
          objid: '7',
          objsubid: 1,
          granted: true,
        },
        {
          locktype: 'relation',
          pid: pidOf(worker),
          mode: 'ShareLock',
          classid: null,
          objid: null,
          objsubid: null,
          granted: true,
        },
      ]);
      await worker.query('COMMIT');
      // The classic check for who holds an advisory lock.
      const { rows: who } = await worker.query(
        "SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.objid = 7",
      );
      expect(who).toEqual([{ application_name: '', pid: pidOf(holder) }]);
    } finally {
      await holder.end();
      await worker.end();
    }
  });

  it('keeps advisory locks per client: a statement waits for a held lock until it is released, cancelled or lock_timeout', async () => {
    const holder = await connect('holder');
    const other = await connect('other');
    try {
      const pidOf = (client: pg.Client) => (client as unknown as { processID: number }).processID;
      expect((await holder.query('SELECT pg_advisory_lock(42)')).rows).toEqual([{ pg_advisory_lock: '' }]);
      // Outside a transaction block it waits, as on a server, shown as waiting for an advisory lock.
      const waited = other.query('SELECT pg_advisory_lock(42) AS got');
      await waitFor(async () => {
        const { rows } = await holder.query(
          "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE application_name = 'other'",
        );
        return rows[0]?.wait_event_type === 'Lock' && rows[0]?.wait_event === 'advisory';
      });
      await holder.query('SELECT pg_advisory_unlock(42)');
      expect((await waited).rows).toEqual([{ got: '' }]);
      // Inside a transaction block it cannot wait (the holder could not run): 55P03 at once.
      await holder.query('BEGIN');
      await expect(holder.query('SELECT pg_advisory_xact_lock(42)')).rejects.toMatchObject({
        code: '55P03',
        message: 'could not obtain advisory lock 42',
        detail: expect.stringContaining(`Client ${pidOf(other)} holds it`),
      });
      await holder.query('ROLLBACK');
      // lock_timeout ends the wait; so does a cancel.
      await holder.query("SET lock_timeout = '200ms'");
      await expect(holder.query('SELECT pg_advisory_lock_shared(42)')).rejects.toMatchObject({
        code: '55P03',
      });
      await holder.query('RESET lock_timeout');
      const cancelled = holder.query('SELECT pg_advisory_lock(42)');
      await waitFor(
        async () =>
          (await other.query("SELECT state FROM pg_stat_activity WHERE application_name = 'holder'")).rows[0]
            ?.state === 'active',
      );
      await other.query('SELECT pg_cancel_backend($1)', [pidOf(holder)]);
      await expect(cancelled).rejects.toMatchObject({ code: '57014' });
      // A named prepared statement waits too, and stays prepared; the holder leaving releases it.
      const prepared = { name: 'take', text: 'SELECT pg_advisory_lock($1) AS got', values: [42] };
      const named = holder.query(prepared);
      await waitFor(
        async () =>
          (
            await other.query(
              "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = 'holder'",
            )
          ).rows[0]?.wait_event_type === 'Lock',
      );
      await other.end();
      expect((await named).rows).toEqual([{ got: '' }]);
      expect((await holder.query(prepared)).rows).toEqual([{ got: '' }]);
      // DISCARD ALL releases the caller's own, as on a server.
      await holder.query('DISCARD ALL');
      const third = await connect();
      try {
        expect((await third.query('SELECT pg_try_advisory_lock(42) AS got')).rows).toEqual([{ got: true }]);
      } finally {
        await third.end();
      }
    } finally {
      await holder.end();
      await other.end().catch(() => {});
    }
  });

  it('reaches clients through an engine in a thread of its own (serve, run), also in another database', async () => {
    const paths = await installAndInitIn(await tempRoot('pglite-oxide-signals-'));
    const engine = await ThreadedEngine.start({
      kind: 'disk',
      runtimeRoot: paths.pgroot,
      pgdata: paths.pgdata,
    });
    const proxy = await startThreadedProxy(engine, { tcp: true, port: 0, onWarning: () => {} });
    const clients: pg.Client[] = [];
    const open = async (database = 'postgres') => {
      const url = new URL(proxy.connectionString);
      url.pathname = `/${database}`;
      const client = new pg.Client({ connectionString: url.href });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    try {
      const admin = await open();
      const victim = await open('template1');
      const victimPid = Number((await victim.query('SELECT pg_backend_pid() AS p')).rows[0].p);
      expect(victimPid).toBe((victim as unknown as { processID: number }).processID);
      const gone = new Promise<void>((resolve) => victim.once('end', () => resolve()));
      // As a suite ends the clients of a database before dropping it: found by name from another.
      const { rows } = await admin.query(
        "SELECT pid, pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE datname = 'template1'",
      );
      expect(rows).toEqual([{ pid: victimPid, t: true }]);
      await gone;
    } finally {
      for (const client of clients) await client.end().catch(() => {});
      await proxy.close();
      await engine.close();
    }
  });
});
