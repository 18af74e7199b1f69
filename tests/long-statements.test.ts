import pg from 'pg';
import { serialize } from 'pg-protocol';
import { installAndInitIn, prepareTemplate } from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startThreadedProxy, type ThreadedProxyHandle } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { RawClient } from './helpers/raw-client.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';
import { waitFor } from './helpers/wait-for.js';

// A statement must not hold the engine longer than its client allows.

let served: Awaited<ReturnType<typeof startServedEngine>>;

beforeAll(async () => {
  served = await startServedEngine();
});

afterAll(async () => {
  await served?.close();
});

async function client(options: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const connected = new pg.Client({ connectionString: served.proxy.connectionString, ...options });
  await connected.connect();
  return connected;
}

describe('statement_timeout', () => {
  it('stops a sleeping, a spilling and an in-transaction statement with 57014; the session goes on', async () => {
    const c = await client();
    try {
      await c.query('SET statement_timeout = 300');
      await expect(c.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
      await expect(c.query('SELECT count(*) FROM generate_series(1, 200000000)')).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to statement timeout',
      });
      await c.query('BEGIN');
      await c.query('SELECT 1');
      await expect(c.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
      await c.query('ROLLBACK');
      await c.query('SET statement_timeout = 0');
      await c.query('SELECT pg_sleep(0.4)');
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('ends a client idle in a transaction past its own idle_in_transaction_session_timeout, and only that client', async () => {
    const c = await client();
    const other = await client();
    try {
      const ended = new Promise<Error>((resolve) => c.on('error', resolve));
      await c.query("SET idle_in_transaction_session_timeout = '50ms'");
      await c.query('BEGIN');
      await c.query('CREATE TABLE left_idle (id int)');
      expect(await ended).toMatchObject({ code: '25P03' });
      // Its transaction was rolled back; the engine session and the other client go on.
      expect(
        (await other.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'left_idle'")).rows,
      ).toEqual([{ n: 0 }]);
      expect((await other.query('SHOW idle_in_transaction_session_timeout')).rows).toEqual([
        { idle_in_transaction_session_timeout: '0' },
      ]);
    } finally {
      await c.end().catch(() => {});
      await other.end();
    }
    expect(served.warnings.filter((warning) => warning.includes('engine failed'))).toEqual([]);
  });
});

describe('an engine in a thread of its own (serve, run)', () => {
  let engine: ThreadedEngine;
  let proxy: ThreadedProxyHandle;
  const warnings: string[] = [];

  beforeAll(async () => {
    const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
    engine = await ThreadedEngine.start({
      kind: 'memory',
      runtimeRoot: template.runtimeRoot,
      pgdata: template.pgdata,
      env: template.env,
      settings: template.settings,
    });
    proxy = await startThreadedProxy(engine, {
      cancelGraceMs: 500,
      onWarning: (message) => warnings.push(message),
    });
  });

  afterAll(async () => {
    await proxy?.close();
  });

  async function connected(): Promise<pg.Client> {
    const c = new pg.Client(proxy.connectionString);
    c.on('error', () => {});
    await c.connect();
    return c;
  }

  /** Sends CancelRequest for `c`, as libpq's PQcancel does. */
  async function cancel(c: pg.Client): Promise<void> {
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const raw = await RawClient.connect(proxy.port);
    raw.send(serialize.cancel(processID, secretKey));
    await raw.untilClosed();
  }

  it('answers new connections and other work while a statement runs', async () => {
    const sleeper = await connected();
    try {
      let sleeping = true;
      const slept = sleeper.query('SELECT pg_sleep(300)').finally(() => {
        sleeping = false;
      });
      slept.catch(() => {});
      const other = await connected();
      // The other client logs in and is queued behind the statement, not the server behind it.
      const queued = other.query('SELECT 1 AS one');
      expect(sleeping).toBe(true);
      await cancel(sleeper);
      await expect(slept).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to user request',
      });
      expect((await queued).rows).toEqual([{ one: 1 }]);
      expect((await sleeper.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
      await other.end();
    } finally {
      await sleeper.end();
    }
  });

  it('replaces the engine when a cancelled statement computes on, and tells every client why', async () => {
    const computer = await connected();
    const bystander = await connected();
    const bystanderLost = new Promise<Error>((resolve) => bystander.once('error', resolve));
    await computer.query('CREATE TABLE before_replace (x int)');
    // A cancel that arrives while the statement still starts up (reading the clock) stops it
    // with 57014; one that arrives once it only computes cannot, and the engine is replaced.
    // Each attempt asks later.
    let outcome: { code?: string; message?: string; detail?: string } = {};
    const replaced = () => outcome.detail?.includes('ran on for 500 ms') ?? false;
    for (let attempt = 1; attempt <= 5 && !replaced(); attempt++) {
      const computing = computer.query(COMPUTES_WITHOUT_CALLING_OUT);
      computing.catch(() => {});
      await waitFor(() => engine.busy);
      await new Promise((resolve) => setTimeout(resolve, attempt * 200));
      await cancel(computer);
      outcome = await computing.then(
        () => ({}),
        (error: { code?: string }) => error,
      );
      // Either way the statement ends as cancelled; one that did not stop cost its engine.
      expect(outcome).toMatchObject({ code: '57014', message: 'canceling statement due to user request' });
    }
    expect(replaced()).toBe(true);
    expect((await bystanderLost).message).toContain('the engine was replaced (everything committed is kept)');
    expect(warnings.some((warning) => warning.includes('the engine is replaced'))).toBe(true);
    const after = await connected();
    try {
      expect((await after.query('SELECT count(*)::int AS n FROM before_replace')).rows).toEqual([{ n: 0 }]);
      expect((await after.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
    } finally {
      await after.end();
      await computer.end().catch(() => {});
      await bystander.end().catch(() => {});
    }
  });

  it('stops a statement that cannot hear its statement_timeout, and one whose client left', async () => {
    const limited = new pg.Client({
      connectionString: proxy.connectionString,
      options: '-c statement_timeout=1000',
    } as pg.ClientConfig);
    limited.on('error', () => {});
    await limited.connect();
    try {
      await expect(limited.query(COMPUTES_WITHOUT_CALLING_OUT)).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to statement timeout',
      });
    } finally {
      await limited.end().catch(() => {});
    }
    // A client that disconnects mid-statement: its statement is cancelled as it leaves.
    const leaving = await connected();
    void leaving.query(COMPUTES_WITHOUT_CALLING_OUT).catch(() => {});
    await waitFor(() => engine.busy);
    (leaving as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await waitFor(() => !engine.busy, 20_000);
    const after = await connected();
    try {
      expect((await after.query('SELECT 4 AS four')).rows).toEqual([{ four: 4 }]);
    } finally {
      await after.end();
    }
  });

  it('stops a running statement when the proxy closes', async () => {
    const own = await ThreadedEngine.start({
      kind: 'memory',
      runtimeRoot: (await prepareTemplate({ cacheDir: await freshCacheDir() })).runtimeRoot,
      pgdata: (await prepareTemplate({ cacheDir: await freshCacheDir() })).pgdata,
    });
    const closing = await startThreadedProxy(own);
    const c = new pg.Client(closing.connectionString);
    c.on('error', () => {});
    await c.connect();
    const running = c.query(COMPUTES_WITHOUT_CALLING_OUT);
    running.catch(() => {});
    await waitFor(() => own.busy);
    await closing.close();
    await expect(running).rejects.toMatchObject({ code: '57P01' });
  });
});

/** Hours of work in memory that never calls out of the engine (no clock, no file): no cancel reaches it. */
const COMPUTES_WITHOUT_CALLING_OUT = 'SELECT count(*) FROM pg_class a, pg_class b, pg_class c, pg_class d';

describe('engine memory (serve --data)', () => {
  it('restarts an engine that grew, once no client is connected, keeping its data', async () => {
    const paths = await installAndInitIn(await tempRoot());
    const engine = await ThreadedEngine.start({
      kind: 'disk',
      runtimeRoot: paths.pgroot,
      pgdata: paths.pgdata,
    });
    const warnings: string[] = [];
    const proxy = await startThreadedProxy(engine, {
      engineMemoryLimitMiB: 1,
      onWarning: (message) => warnings.push(message),
    });
    try {
      const c = new pg.Client(proxy.connectionString);
      await c.connect();
      await c.query("CREATE TABLE grown AS SELECT repeat('x', 1000) AS body FROM generate_series(1, 1000)");
      await c.end();
      expect(engine.memoryMiB).toBeGreaterThan(1);
      await waitFor(() => warnings.some((warning) => warning.includes('to give the memory back')));
      const after = new pg.Client(proxy.connectionString);
      await after.connect();
      expect((await after.query('SELECT count(*)::int AS n FROM grown')).rows).toEqual([{ n: 1000 }]);
      await after.end();
    } finally {
      await proxy.close();
    }
  });
});

describe('statement_timeout from the startup options', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;

  beforeAll(async () => {
    served = await startServedEngine();
  });

  afterAll(async () => {
    await served?.close();
  });

  it('stops a statement of that client only, as PGOPTIONS or options=-c set it', async () => {
    const limited = new pg.Client({
      connectionString: served.proxy.connectionString,
      options: '-c statement_timeout=300',
    } as pg.ClientConfig);
    const unlimited = new pg.Client(served.proxy.connectionString);
    await limited.connect();
    await unlimited.connect();
    try {
      await expect(limited.query('SELECT pg_sleep(30)')).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to statement timeout',
      });
      // The other client's statement runs as long as it needs, in between and after.
      await unlimited.query('SELECT pg_sleep(0.5)');
      expect((await limited.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '300ms' }]);
      expect((await unlimited.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '0' }]);
    } finally {
      await limited.end();
      await unlimited.end();
    }
  });
});

// A statement that will not stop costs its engine, never the data: the new engine recovers to the
// last commit, in memory as on disk.
describe.each([
  ['in memory (serve, run)', 'memory'],
  ['on a data directory (serve --data)', 'disk'],
] as const)('an engine replaced mid-statement, %s', (_name, kind) => {
  it('keeps every row committed by every client; only the stopped statement is lost', async () => {
    let engine: ThreadedEngine;
    if (kind === 'memory') {
      const template = await prepareTemplate({ cacheDir: await freshCacheDir() });
      engine = await ThreadedEngine.start({
        kind,
        runtimeRoot: template.runtimeRoot,
        pgdata: template.pgdata,
        env: template.env,
        settings: template.settings,
      });
    } else {
      const paths = await installAndInitIn(await tempRoot('pglite-oxide-replaced-'));
      engine = await ThreadedEngine.start({ kind, runtimeRoot: paths.pgroot, pgdata: paths.pgdata });
    }
    const proxy = await startThreadedProxy(engine, { cancelGraceMs: 300, onWarning: () => {} });
    const clients: pg.Client[] = [];
    const connect = async (options?: string) => {
      const client = new pg.Client({ connectionString: proxy.connectionString, options });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    try {
      const [a, b] = [await connect(), await connect()];
      const cutOff = new Promise<Error>((resolve) => a.once('error', resolve));
      await a.query('CREATE TABLE orders (id int PRIMARY KEY, who text); CREATE ROLE clerk LOGIN');
      // Enough rows to fill a WAL segment's first pages and a table file of several pages.
      await a.query("INSERT INTO orders SELECT g, 'a' FROM generate_series(1, 5000) g");
      await b.query("BEGIN; INSERT INTO orders VALUES (10001, 'b'); COMMIT");
      await b.query("INSERT INTO orders VALUES (10002, 'b')");
      // The stopped statement's transaction is lost with it.
      const runaway = await connect('-c statement_timeout=500');
      await runaway.query("BEGIN; INSERT INTO orders VALUES (20000, 'lost')");
      await expect(runaway.query(COMPUTES_WITHOUT_CALLING_OUT)).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to statement timeout',
        detail: expect.stringContaining('so the engine was replaced (everything committed is kept)'),
      });
      // The clients that were cut off are told why, and that nothing committed was lost.
      expect(await cutOff).toMatchObject({
        code: '57P01',
        message: expect.stringContaining('the engine was replaced (everything committed is kept)'),
      });
      const after = await connect();
      expect((await after.query('SELECT count(*)::int AS n, max(id) AS top FROM orders')).rows).toEqual([
        { n: 5002, top: 10002 },
      ]);
      // The role committed before the replacement logs in too.
      const url = new URL(proxy.connectionString);
      url.username = 'clerk';
      const clerk = new pg.Client({ connectionString: url.href });
      await clerk.connect();
      clients.push(clerk);
      expect((await clerk.query('SELECT current_user AS me')).rows).toEqual([{ me: 'clerk' }]);
    } finally {
      await Promise.all(clients.map((client) => client.end().catch(() => {})));
      await proxy.close();
      await engine.close();
    }
  });
});
