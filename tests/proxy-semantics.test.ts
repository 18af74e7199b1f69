import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { RawClient } from './helpers/raw-client.js';
import { waitFor } from './helpers/wait-for.js';

let served: Awaited<ReturnType<typeof startServedEngine>>;
let url: string;

beforeAll(async () => {
  // The default timeouts: a slow machine must not turn an ordinary wait into an error here.
  served = await startServedEngine();
  url = served.proxy.connectionString;
  await query('CREATE TABLE items (id int PRIMARY KEY, label text)');
});

afterAll(async () => {
  await served?.close();
});

async function connect(connectionString = url): Promise<pg.Client> {
  const client = new pg.Client(connectionString);
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function query(sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = await connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}

/** Resolves once `count` clients of `proxy` are queued for its engine. */
async function queued(count: number, proxy = served.proxy): Promise<void> {
  await waitFor(
    () => proxy.clients().filter((client) => client.includes('waiting for the engine')).length === count,
  );
}

describe('one engine session shared safely', () => {
  it('pins the engine to an open transaction; other clients queue first come, first served', async () => {
    const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
    try {
      await a.query('BEGIN');
      await a.query("INSERT INTO items VALUES (1, 'pinned')");
      const order: string[] = [];
      const bDone = b.query('SELECT count(*)::int AS n FROM items').then((r) => {
        order.push('b');
        return r.rows[0].n;
      });
      await queued(1);
      const cDone = c.query('SELECT 1').then(() => order.push('c'));
      await queued(2);
      expect(order).toEqual([]);
      await a.query('COMMIT');
      order.push('a committed');
      expect(await bDone).toBe(1);
      await cDone;
      expect(order).toEqual(['a committed', 'b', 'c']);
    } finally {
      await Promise.all([a.end(), b.end(), c.end()]);
      await query('DELETE FROM items');
    }
  });

  it('rolls back a client that disconnects mid-transaction; the others do not notice', async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('BEGIN');
      await a.query("INSERT INTO items VALUES (3, 'abandoned')");
      const bQuery = b.query('SELECT count(*)::int AS n FROM items');
      (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      expect((await bQuery).rows).toEqual([{ n: 0 }]);
    } finally {
      await b.end();
    }
  });

  it('rolls back a client that breaks the protocol mid-transaction', async () => {
    const raw = await RawClient.ready(served.proxy.port);
    raw.send(serialize.query("BEGIN; INSERT INTO items VALUES (4, 'broken')"));
    expect((await raw.untilReady()).at(-1)?.status).toBe('T');
    raw.send(Buffer.from([0x01, 0, 0, 0, 4]));
    const messages = await raw.untilClosed();
    expect(messages.at(-1)).toMatchObject({ severity: 'FATAL', code: '08P01' });
    expect((await query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 0 }]);
  });

  it("keeps each client's SET its own, query after query, and leaves nothing when it goes", async () => {
    const a = await connect();
    const b = await connect();
    try {
      const searchPath = (await b.query('SHOW search_path')).rows[0].search_path;
      await a.query("SET DateStyle = 'German'");
      await a.query('SET search_path = pg_catalog, public');
      await b.query("SELECT set_config('TimeZone', 'Asia/Tokyo', false)");
      for (let turn = 0; turn < 3; turn++) {
        expect((await b.query('SHOW DateStyle')).rows[0].DateStyle).toBe('ISO, MDY');
        expect((await a.query('SHOW DateStyle')).rows[0].DateStyle).toBe('German, DMY');
        expect((await b.query('SHOW search_path')).rows[0].search_path).toBe(searchPath);
        expect((await a.query('SHOW search_path')).rows[0].search_path).toBe('pg_catalog, public');
        expect((await a.query('SHOW TimeZone')).rows[0].TimeZone).toBe('UTC');
        expect((await b.query('SHOW TimeZone')).rows[0].TimeZone).toBe('Asia/Tokyo');
      }
      // RESET goes back to the server's value; a ROLLBACK undoes a SET made in the transaction.
      await a.query('RESET DateStyle');
      await a.query('BEGIN');
      await a.query('SET search_path = public');
      await a.query('ROLLBACK');
      expect((await b.query('SHOW search_path')).rows[0].search_path).toBe(searchPath);
      expect((await a.query('SHOW DateStyle')).rows[0].DateStyle).toBe('ISO, MDY');
      expect((await a.query('SHOW search_path')).rows[0].search_path).toBe('pg_catalog, public');
    } finally {
      await a.end();
      await b.end();
    }
    expect(await served.proxy.clientsGone(10_000)).toBe(true);
    const c = await connect();
    try {
      expect((await c.query('SHOW search_path')).rows[0].search_path).toBe(
        (await c.query('SELECT reset_val FROM pg_settings WHERE name = $1', ['search_path'])).rows[0]
          .reset_val,
      );
      expect((await c.query('SHOW TimeZone')).rows[0].TimeZone).toBe('UTC');
    } finally {
      await c.end();
    }
  });

  it("keeps each client's SQL-level PREPARE names its own, DEALLOCATE ALL included", async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('PREPARE q AS SELECT $$from a$$ AS said');
      await b.query('PREPARE q AS SELECT $$from b$$ AS said');
      await b.query({ name: 'b_protocol', text: 'SELECT 2 AS two' });
      for (let turn = 0; turn < 2; turn++) {
        expect((await a.query('EXECUTE q')).rows).toEqual([{ said: 'from a' }]);
        expect((await b.query('EXECUTE q')).rows).toEqual([{ said: 'from b' }]);
      }
      expect((await a.query('EXPLAIN (COSTS OFF) EXECUTE q')).rows).toEqual([{ 'QUERY PLAN': 'Result' }]);
      await a.query('DEALLOCATE ALL');
      await expect(a.query('EXECUTE q')).rejects.toMatchObject({ code: '26000' });
      // The other client's statements, SQL-level and protocol-level, are still there.
      expect((await b.query('EXECUTE q')).rows).toEqual([{ said: 'from b' }]);
      expect((await b.query({ name: 'b_protocol', text: 'SELECT 2 AS two' })).rows).toEqual([{ two: 2 }]);
      await a.query('PREPARE q AS SELECT 1 AS again');
      await a.query('DEALLOCATE q');
      expect((await b.query('EXECUTE q')).rows).toEqual([{ said: 'from b' }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it("DISCARD ALL and DISCARD TEMP discard only the calling client's state while others are connected", async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('PREPARE q AS SELECT 1 AS one');
      await a.query('CREATE TEMP TABLE a_scratch (n int)');
      await a.query('SET search_path = pg_catalog');
      await b.query('PREPARE q AS SELECT 2 AS two');
      await b.query('CREATE TEMP TABLE b_scratch (n int)');
      await b.query({ name: 'b_protocol', text: 'SELECT 3 AS three' });
      await b.query("SET TimeZone = 'Asia/Tokyo'");

      await a.query('DISCARD TEMP');
      await expect(a.query('SELECT * FROM a_scratch')).rejects.toMatchObject({ code: '42P01' });
      expect((await a.query('EXECUTE q')).rows).toEqual([{ one: 1 }]);

      expect((await a.query('DISCARD ALL')).command).toBe('DISCARD');
      await expect(a.query('EXECUTE q')).rejects.toMatchObject({ code: '26000' });
      expect((await a.query('SHOW search_path')).rows[0].search_path).not.toBe('pg_catalog');
      // The other client keeps everything of its own.
      expect((await b.query('EXECUTE q')).rows).toEqual([{ two: 2 }]);
      expect((await b.query('SELECT count(*)::int AS n FROM b_scratch')).rows).toEqual([{ n: 0 }]);
      expect((await b.query({ name: 'b_protocol', text: 'SELECT 3 AS three' })).rows).toEqual([{ three: 3 }]);
      expect((await b.query('SHOW TimeZone')).rows).toEqual([{ TimeZone: 'Asia/Tokyo' }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it("deallocates a leaving client's prepared statements and closes its cursors", async () => {
    const a = await connect();
    await a.query({ name: 'leaves_behind', text: 'SELECT $1::int AS leaves_behind', values: [1] });
    await a.query('PREPARE sql_level AS SELECT 1');
    await a.query('DECLARE held CURSOR WITH HOLD FOR SELECT 1');
    const mine = async (client: pg.Client) =>
      (
        await client.query(
          'SELECT (SELECT count(*) FROM pg_prepared_statements)::int AS statements, (SELECT count(*) FROM pg_cursors)::int AS cursors',
        )
      ).rows[0];
    expect(await mine(a)).toEqual({ statements: 2, cursors: 1 });
    await a.end();
    expect(await served.proxy.clientsGone(10_000)).toBe(true);
    // The next client takes over the engine's record of the one that left: nothing of it is there.
    const b = await connect();
    try {
      expect(await mine(b)).toEqual({ statements: 0, cursors: 0 });
      await b.query('PREPARE sql_level AS SELECT 2 AS two');
      expect((await b.query('EXECUTE sql_level')).rows).toEqual([{ two: 2 }]);
    } finally {
      await b.end();
    }
  });

  it('cancels a queued query with CancelRequest (57014)', async () => {
    const holder = await connect();
    const raw = await RawClient.connect(served.proxy.port);
    raw.send(serialize.startup({ user: 'postgres', database: 'postgres' }));
    const key = (await raw.untilReady()).find((m) => m.name === 'backendKeyData')!;
    try {
      await holder.query('BEGIN');
      raw.send(serialize.query('SELECT 1'));
      await queued(1);
      const canceller = await RawClient.connect(served.proxy.port);
      canceller.send(serialize.cancel(key.processID!, key.secretKey!));
      await canceller.untilClosed();
      const answer = await raw.untilReady();
      expect(answer[0]).toMatchObject({ name: 'error', code: '57014' });
    } finally {
      await holder.query('COMMIT');
      await holder.end();
      raw.end();
    }
  });

  it('holds the engine for an extended batch flushed before its Sync', async () => {
    const raw = await RawClient.ready(served.proxy.port);
    const other = await connect();
    try {
      raw.send(
        Buffer.concat([
          serialize.parse({ name: 'flushy', text: 'SELECT 5 AS five' }),
          serialize.bind({ statement: 'flushy' }),
          serialize.execute({}),
          serialize.flush(),
        ]),
      );
      await raw.untilMessage((m) => m.name === 'commandComplete');
      let otherDone = false;
      const otherQuery = other.query('SELECT 1').then(() => {
        otherDone = true;
      });
      await queued(1);
      expect(otherDone).toBe(false);
      raw.send(serialize.sync());
      expect((await raw.untilReady()).at(-1)?.status).toBe('I');
      await otherQuery;
    } finally {
      raw.end();
      await other.end();
    }
  });

  it('holds nothing for a batch that failed before its Sync, and names the portal as the client did', async () => {
    const raw = await RawClient.ready(served.proxy.port);
    const other = await connect();
    try {
      // A Describe of a portal that does not exist, flushed, then nothing: PostgreSQL skips the
      // client's messages to its Sync and holds nothing meanwhile.
      raw.send(Buffer.concat([serialize.describe({ type: 'P', name: 'nope' }), serialize.flush()]));
      const failed = await raw.untilMessage((m) => m.name === 'error');
      expect(failed).toMatchObject({ code: '34000', message: 'portal "nope" does not exist' });
      expect((await other.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
      raw.send(serialize.sync());
      expect((await raw.untilReady()).map((m) => m.name)).toEqual(['error', 'readyForQuery']);
      // Also after rows were written: the implicit transaction ended with the error.
      raw.send(
        Buffer.concat([
          serialize.parse({ text: 'INSERT INTO items VALUES (90, $1)' }),
          serialize.bind({ values: ['kept?'] }),
          serialize.execute({}),
          // Its Bind fails: the constant division is folded when it is planned.
          serialize.parse({ text: 'SELECT 1/0' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ text: 'SELECT 3' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.flush(),
        ]),
      );
      expect(await raw.untilMessage((m) => m.name === 'error' && m.code === '22012')).toBeTruthy();
      expect((await other.query('SELECT count(*)::int AS n FROM items WHERE id = 90')).rows).toEqual([
        { n: 0 },
      ]);
      // Skipped to the Sync, which gets the ReadyForQuery owed.
      raw.send(Buffer.concat([serialize.parse({ text: 'SELECT 4' }), serialize.sync()]));
      const ready = await raw.untilReady();
      expect(ready.map((m) => m.name)).toEqual([
        'parseComplete',
        'bindComplete',
        'commandComplete',
        'parseComplete',
        'error',
        'readyForQuery',
      ]);
      expect(ready.at(-1)?.status).toBe('I');
      raw.send(serialize.query('SELECT 5 AS five'));
      expect((await raw.untilReady()).find((m) => m.name === 'dataRow')?.fields).toEqual(['5']);
      // Inside a transaction block the failed transaction stays the client's, as on a server.
      raw.send(serialize.query('BEGIN'));
      await raw.untilReady();
      raw.send(Buffer.concat([serialize.execute({ portal: 'gone' }), serialize.flush()]));
      expect(await raw.untilMessage((m) => m.name === 'error')).toMatchObject({
        code: '34000',
        message: 'portal "gone" does not exist',
      });
      raw.send(serialize.sync());
      expect((await raw.untilReady()).map((m) => [m.name, m.status])).toEqual([
        ['error', undefined],
        ['readyForQuery', 'E'],
      ]);
      raw.send(serialize.query('ROLLBACK'));
      expect((await raw.untilReady()).at(-1)?.status).toBe('I');
    } finally {
      raw.end();
      await other.end();
    }
  });

  it('runs COPY FROM STDIN sent with the extended protocol, and CopyFail', async () => {
    const raw = await RawClient.ready(served.proxy.port);
    try {
      const copy = 'COPY items (id, label) FROM STDIN';
      raw.send(
        Buffer.concat([
          serialize.parse({ text: copy }),
          serialize.bind({}),
          serialize.describe({ type: 'P' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const response = await raw.untilMessage((m) => m.name === 'copyInResponse');
      expect(response).toMatchObject({ binary: false, columnTypes: [0, 0] });
      raw.send(
        Buffer.concat([
          serialize.copyData(Buffer.from('10\tten\n11\televen\n')),
          serialize.copyDone(),
          serialize.sync(),
        ]),
      );
      const done = await raw.untilReady();
      expect(done.find((m) => m.name === 'commandComplete')?.text).toBe('COPY 2');
      expect(done.at(-1)?.status).toBe('I');

      raw.send(serialize.query(copy));
      await raw.untilMessage((m) => m.name === 'copyInResponse');
      raw.send(
        Buffer.concat([
          serialize.copyData(Buffer.from('12\ttwelve\n')),
          serialize.copyFail('changed my mind'),
        ]),
      );
      const failed = await raw.untilReady();
      expect(failed[1]).toMatchObject({
        name: 'error',
        code: '57014',
        message: 'COPY from stdin failed: changed my mind',
      });
      expect((await query("SELECT string_agg(label, ',' ORDER BY id) AS l FROM items")).rows).toEqual([
        { l: 'ten,eleven' },
      ]);
    } finally {
      raw.end();
      await query('DELETE FROM items');
    }
  });
});

describe('the timeouts of a shared engine', () => {
  const QUEUE_TIMEOUT_MS = 800;
  const IDLE_TIMEOUT_MS = 1_500;
  let short: Awaited<ReturnType<typeof startServedEngine>>;
  let shortUrl: string;

  beforeAll(async () => {
    short = await startServedEngine({
      queueTimeoutMs: QUEUE_TIMEOUT_MS,
      idleInTransactionTimeoutMs: IDLE_TIMEOUT_MS,
    });
    shortUrl = short.proxy.connectionString;
  });

  afterAll(async () => {
    await short?.close();
  });

  it('gives a queued client 55P03 after queueTimeoutMs, naming the client whose transaction it waited for', async () => {
    const a = new pg.Client({ connectionString: shortUrl, application_name: 'order service' });
    await a.connect();
    const b = await connect(shortUrl);
    try {
      await a.query('BEGIN');
      await a.query('SELECT 42 AS holding');
      const started = Date.now();
      const refused = await b.query('SELECT 1').catch((error: { code: string; message: string }) => error);
      expect(refused).toMatchObject({ code: '55P03' });
      expect((refused as { message: string }).message).toMatch(
        /^waited \d+ ms \(queueTimeoutMs\) for client \d+ \(user "postgres", application_name "order service"\), in a transaction for [\d.]+ s, its last statement "SELECT 42 AS holding": one engine runs one transaction at a time/,
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(QUEUE_TIMEOUT_MS - 50);
      await a.query('COMMIT');
      expect((await b.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('ends a client idle in a transaction past the limit once another waits for it (25P03), and never harms a lone one', async () => {
    const a = new pg.Client({ connectionString: shortUrl, application_name: 'forgetful' });
    const ended = new Promise<Error>((resolve) => a.on('error', resolve));
    await a.connect();
    await a.query('CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, label text)');
    await a.query("BEGIN; INSERT INTO items VALUES (2, 'forgotten')");
    // Past the limit, nobody waiting: it keeps its transaction, as on a server.
    await new Promise((resolve) => setTimeout(resolve, IDLE_TIMEOUT_MS * 2));
    expect((await a.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 1 }]);
    // With a client waiting (its own lock_timeout is longer than the limit): once idle past the
    // limit, it is rolled back and disconnected, and the waiter goes on without an error.
    const b = new pg.Client({
      connectionString: shortUrl,
      options: `-c lock_timeout=${IDLE_TIMEOUT_MS * 4}`,
    });
    await b.connect();
    try {
      expect((await b.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 0 }]);
      expect(await ended).toMatchObject({ code: '25P03' });
    } finally {
      await b.end();
      await a.end().catch(() => {});
    }
  });

  it("waits for the engine as long as the waiter's own lock_timeout or statement_timeout says", async () => {
    const holder = await connect(shortUrl);
    const byLock = new pg.Client({ connectionString: shortUrl, options: '-c lock_timeout=1200' });
    const byStatement = new pg.Client({
      connectionString: shortUrl,
      options: '-c statement_timeout=1100 -c lock_timeout=5000',
    });
    await Promise.all([byLock.connect(), byStatement.connect()]);
    try {
      await holder.query('BEGIN');
      const [lock, statement] = await Promise.all(
        [byLock, byStatement].map((client) =>
          client.query('SELECT 1').catch((error: { code: string; message: string }) => error),
        ),
      );
      expect(lock).toMatchObject({ code: '55P03' });
      expect((lock as { message: string }).message).toMatch(
        /^waited 1200 ms \(lock_timeout\) for client \d+/,
      );
      expect(statement).toMatchObject({ code: '57014' });
      expect((statement as { message: string }).message).toMatch(
        /^waited 1100 ms \(statement_timeout\) for client \d+/,
      );
    } finally {
      await holder.query('ROLLBACK');
      await Promise.all([holder.end(), byLock.end(), byStatement.end()]);
    }
  });

  it('ends a client by its own idle_in_transaction_session_timeout, waiter or not, as a server does', async () => {
    const a = new pg.Client(shortUrl);
    const ended = new Promise<Error>((resolve) => a.on('error', resolve));
    await a.connect();
    await a.query("SET idle_in_transaction_session_timeout = '300ms'");
    await a.query('BEGIN');
    expect(await ended).toMatchObject({ code: '25P03' });
    await a.end().catch(() => {});
  });
});
