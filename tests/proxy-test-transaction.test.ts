import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { InvalidInputError } from 'pglite-oxide';
import postgres from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { type Message, RawClient } from './helpers/raw-client.js';

const run = promisify(execFile);

// Isolation 'transaction' through the proxy: each test inside an outer transaction, rolled back
// after it, with real clients none the wiser.
describe('a proxy serving test transactions', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;
  let url: string;

  const scalar = async (sql: string): Promise<unknown> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return Object.values((await client.query(sql)).rows[0] ?? {})[0];
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    served = await startServedEngine({ testTransactions: true, idleInTransactionTimeoutMs: 5_000 });
    url = served.proxy.connectionString;
    const setup = new pg.Client({ connectionString: url });
    await setup.connect();
    await setup.query('CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE NOT NULL)');
    await setup.query("INSERT INTO items (name) VALUES ('seeded')");
    await setup.end();
  });
  afterAll(() => served.close());
  beforeEach(async () => {
    await served.proxy.beginTest();
  });

  it("undoes a test's writes when the test ends, and keeps them when told to commit", async () => {
    await scalar("INSERT INTO items (name) VALUES ('temporary')");
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(2);
    await served.proxy.endTest();
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(1);

    await served.proxy.beginTest();
    await scalar("INSERT INTO items (name) VALUES ('kept')");
    await served.proxy.endTest('commit');
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(2);
    await scalar("DELETE FROM items WHERE name = 'kept'");
  });

  it('gives clients the tags and transaction status of a server of their own', async () => {
    const client = await RawClient.ready(served.proxy.port);
    const exchange = async (sql: string) => {
      client.send(serialize.query(sql));
      const messages = await client.untilReady();
      return {
        tags: messages.filter((m) => m.name === 'commandComplete').map((m) => m.text),
        notices: messages.filter((m) => m.name === 'notice').map((m) => m.code),
        errors: messages.filter((m) => m.name === 'error').map((m) => m.code),
        status: (messages.at(-1) as Message).status,
      };
    };
    expect(await exchange('SELECT 1')).toMatchObject({ tags: ['SELECT 1'], status: 'I' });
    expect(await exchange('BEGIN')).toMatchObject({ tags: ['BEGIN'], status: 'T' });
    expect(await exchange('BEGIN')).toMatchObject({ tags: ['BEGIN'], notices: ['25001'], status: 'T' });
    expect(await exchange("INSERT INTO items (name) VALUES ('in tx')")).toMatchObject({ status: 'T' });
    expect(await exchange('SELECT 1/0')).toMatchObject({ errors: ['22012'], status: 'E' });
    expect(await exchange('SELECT 1')).toMatchObject({ errors: ['25P02'], status: 'E' });
    // COMMIT of a failed transaction rolls it back and says so, as PostgreSQL does.
    expect(await exchange('COMMIT')).toMatchObject({ tags: ['ROLLBACK'], status: 'I' });
    expect(await exchange('COMMIT')).toMatchObject({ tags: ['COMMIT'], notices: ['25P01'], status: 'I' });
    expect(await exchange('ROLLBACK')).toMatchObject({ tags: ['ROLLBACK'], notices: ['25P01'], status: 'I' });
    expect(await exchange('SAVEPOINT s')).toMatchObject({ errors: ['25P01'], status: 'I' });
    expect(
      await exchange(
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE; INSERT INTO items (name) VALUES ('a'); SAVEPOINT s; INSERT INTO items (name) VALUES ('b'); ROLLBACK TO SAVEPOINT s; COMMIT",
      ),
    ).toMatchObject({
      tags: ['BEGIN', 'INSERT 0 1', 'SAVEPOINT', 'INSERT 0 1', 'ROLLBACK', 'COMMIT'],
      status: 'I',
    });
    expect(await exchange("SELECT string_agg(name, ',' ORDER BY id) FROM items")).toMatchObject({
      status: 'I',
    });
    expect(await exchange("PREPARE TRANSACTION 'x'")).toMatchObject({ errors: ['0A000'], status: 'I' });
    client.end();
    expect(await scalar("SELECT string_agg(name, ',' ORDER BY id) FROM items")).toBe('seeded,a');
  });

  it('lets a test go on after an expected error outside its own transactions', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await expect(client.query("INSERT INTO items (name) VALUES ('seeded')")).rejects.toMatchObject({
      code: '23505',
    });
    await client.query("INSERT INTO items (name) VALUES ('after the error')");
    expect((await client.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2 }]);
    // The same through the extended protocol.
    await expect(client.query('INSERT INTO items (name) VALUES ($1)', ['seeded'])).rejects.toMatchObject({
      code: '23505',
    });
    expect((await client.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2 }]);
    await client.end();
  });

  it('explains statements that cannot run in a transaction block, and the test goes on', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const vacuum = await client.query('VACUUM items').catch((error: pg.DatabaseError) => error);
    expect(vacuum).toMatchObject({ code: '25001', hint: expect.stringMatching(/isolation 'reset'/) });
    await expect(client.query('CREATE DATABASE other')).rejects.toMatchObject({ code: '25001' });
    await expect(
      client.query('CREATE INDEX CONCURRENTLY items_by_name ON items (name)'),
    ).rejects.toMatchObject({
      code: '25001',
      hint: expect.stringMatching(/isolation 'reset'/),
    });
    expect((await client.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 1 }]);
    await client.end();
  });

  it('ends a client transaction with END (as COMMIT) and ABORT (as ROLLBACK), inside the test', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query("INSERT INTO items (name) VALUES ('aborted')");
      expect((await client.query('ABORT')).command).toBe('ROLLBACK');
      await client.query('START TRANSACTION');
      await client.query("INSERT INTO items (name) VALUES ('ended')");
      expect((await client.query('END')).command).toBe('COMMIT');
      expect((await client.query('SELECT array_agg(name ORDER BY id) AS names FROM items')).rows).toEqual([
        { names: ['seeded', 'ended'] },
      ]);
    } finally {
      await client.end();
    }
    await served.proxy.endTest();
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(1);
  });

  it('does not roll sequences back: ids keep growing from test to test', async () => {
    const insert = "INSERT INTO items (name) VALUES ('numbered') RETURNING id";
    const first = (await scalar(insert)) as number;
    await served.proxy.endTest();
    await served.proxy.beginTest();
    expect(await scalar(insert)).toBe(first + 1);
  });

  it('keeps now() for the whole test, across statements and clients', async () => {
    const first = (await scalar('SELECT now()')) as Date;
    // The clock goes on; the test's transaction started before it did.
    await scalar('SELECT pg_sleep(0.02)');
    expect(await scalar('SELECT clock_timestamp() > now()')).toBe(true);
    expect(((await scalar('SELECT now()')) as Date).getTime()).toBe(first.getTime());
  });

  it("delivers a client's notifications when its own work would have committed, and nothing rolled back", async () => {
    const listener = new pg.Client({ connectionString: url });
    const notifier = new pg.Client({ connectionString: url });
    await Promise.all([listener.connect(), notifier.connect()]);
    const heard: string[] = [];
    const waiters: Array<() => void> = [];
    listener.on('notification', (message) => {
      heard.push(`${message.channel}:${message.payload}`);
      waiters.shift()?.();
    });
    const next = () => new Promise<void>((resolve) => waiters.push(resolve));
    // A round trip on the listener: whatever was routed to it before has arrived.
    const settled = async () => void (await listener.query('SELECT 1'));
    try {
      await listener.query('LISTEN changes; LISTEN "other channel"');
      expect((await listener.query('SELECT pg_listening_channels() AS c')).rows.map((row) => row.c)).toEqual([
        'changes',
        'other channel',
      ]);
      let heardOne = next();
      await notifier.query("NOTIFY changes, 'a statement of its own'");
      await heardOne;

      heardOne = next();
      await notifier.query("SELECT pg_notify('other channel', 'pg_notify')");
      await heardOne;
      // Through the extended protocol: released at the client's Sync.
      heardOne = next();
      await notifier.query('SELECT pg_notify($1, $2)', ['changes', 'with parameters']);
      await heardOne;

      // Inside its own transaction: nothing until COMMIT, then each notification once.
      await notifier.query('BEGIN');
      await notifier.query("NOTIFY changes, 'in a transaction'");
      await notifier.query("NOTIFY changes, 'in a transaction'");
      await notifier.query('SAVEPOINT undone');
      await notifier.query("NOTIFY changes, 'rolled back to a savepoint'");
      await notifier.query('ROLLBACK TO SAVEPOINT undone');
      await notifier.query('SAVEPOINT kept');
      await notifier.query("SELECT pg_notify('changes', 'released savepoint')");
      await notifier.query('RELEASE SAVEPOINT kept');
      await settled();
      expect(heard).toHaveLength(3);
      heardOne = next();
      await notifier.query('COMMIT');
      await heardOne;
      await settled();

      await notifier.query('BEGIN');
      await notifier.query("NOTIFY changes, 'rolled back'");
      await notifier.query('ROLLBACK');
      await notifier
        .query("DO $$ BEGIN PERFORM pg_notify('changes', 'failed'); RAISE 'no'; END $$")
        .catch(() => {});

      // From a trigger, by statements built at run time.
      await notifier.query(`CREATE FUNCTION announce() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN EXECUTE format('NOTIFY changes, %L', 'trigger ' || NEW.name); RETURN NEW; END $$`);
      await notifier.query(
        'CREATE TRIGGER announce AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION announce()',
      );
      heardOne = next();
      await notifier.query("INSERT INTO items (name) VALUES ('announced')");
      await heardOne;

      await listener.query('UNLISTEN changes');
      await notifier.query("NOTIFY changes, 'after UNLISTEN'");
      await settled();
      expect(heard).toEqual([
        'changes:a statement of its own',
        'other channel:pg_notify',
        'changes:with parameters',
        'changes:in a transaction',
        'changes:released savepoint',
        'changes:trigger announced',
      ]);
      // The test's rollback undoes its LISTEN too, as it undoes everything else.
      await served.proxy.endTest();
      await notifier.query('NOTIFY "other channel", \'after the test\'');
      await settled();
      expect(heard).toHaveLength(6);
      expect((await listener.query('SELECT pg_listening_channels() AS c')).rows).toEqual([]);
    } finally {
      await Promise.all([listener.end(), notifier.end()]);
    }
  });

  it('answers transaction control sent through the extended protocol, named or not', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const named = (text: string) => ({ text, values: [] as string[], name: text.toLowerCase() });
    await client.query(named('BEGIN'));
    await client.query("INSERT INTO items (name) VALUES ('committed by a prepared COMMIT')");
    await client.query(named('COMMIT'));
    // Prepared once, run again: the proxy still answers it, and nothing ends the test.
    await client.query(named('COMMIT'));
    await client.query({ text: 'ROLLBACK', values: [] as string[] });
    await client.end();
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(2);
    await served.proxy.endTest();
    expect(await scalar('SELECT count(*)::int FROM items')).toBe(1);
  });

  it('serves a pool of five using transactions of their own at once', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 5 });
    await Promise.all(
      Array.from({ length: 5 }, async (_, i) => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await client.query('INSERT INTO items (name) VALUES ($1)', [`worker ${i}`]);
          if (i % 2 === 0) await client.query('COMMIT');
          else await client.query('ROLLBACK');
        } finally {
          client.release();
        }
      }),
    );
    expect((await pool.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 4 }]);
    await pool.end();
  });

  it('undoes the transaction of a client that disconnects inside it, and only that', async () => {
    const leaving = new pg.Client({ connectionString: url });
    await leaving.connect();
    await scalar("INSERT INTO items (name) VALUES ('before')");
    await leaving.query('BEGIN');
    await leaving.query("INSERT INTO items (name) VALUES ('abandoned')");
    await leaving.end();
    expect(await scalar("SELECT string_agg(name, ',' ORDER BY id) FROM items")).toBe('seeded,before');
    // The test's end names it, though it is gone.
    expect(await served.proxy.endTest()).toEqual([
      expect.stringMatching(
        /^client \d+ \(user "postgres"\), in a transaction for [\d.]+ s, its last statement "INSERT INTO items \(name\) VALUES \('abandoned'\)", then disconnected$/,
      ),
    ]);
  });

  it('works for psql and postgres.js, whose transactions are simple queries', async () => {
    const { stdout } = await run('psql', [
      url,
      '-v',
      'ON_ERROR_STOP=1',
      '-Atc',
      "BEGIN; INSERT INTO items (name) VALUES ('psql'); COMMIT; SELECT count(*) FROM items",
    ]);
    // psql 15 prints every statement's result, as against any server.
    expect(stdout.trim().split('\n')).toEqual(['BEGIN', 'INSERT 0 1', 'COMMIT', '2']);
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    await sql.begin(async (tx) => {
      await tx`INSERT INTO items (name) VALUES ('postgres.js')`;
      await tx
        .savepoint(async (inner) => {
          await inner`INSERT INTO items (name) VALUES ('undone')`;
          throw new Error('undo the savepoint');
        })
        .catch(() => {});
    });
    const [row] = await sql`SELECT count(*)::int AS n FROM items`;
    expect(row).toEqual({ n: 3 });
    await sql.end();
  });

  it("keeps each client's settings from test to test, as its own server would, and no other client's", async () => {
    const a = new pg.Client({ connectionString: url, options: '-c work_mem=8MB' });
    const b = new pg.Client({ connectionString: url, options: '-c statement_timeout=4s' });
    await Promise.all([a.connect(), b.connect()]);
    const settings = async (client: pg.Client) =>
      (
        await client.query(
          "SELECT current_setting('work_mem') AS mem, current_setting('search_path') AS path, current_setting('statement_timeout') AS timeout",
        )
      ).rows[0];
    try {
      await a.query('SET search_path = pg_catalog, public');
      await b.query("SELECT set_config('statement_timeout', '7s', false)");
      expect(await settings(a)).toEqual({ mem: '8MB', path: 'pg_catalog, public', timeout: '0' });
      // The test's rollback undoes the SETs in the engine; each client still has its own.
      await served.proxy.endTest();
      await served.proxy.beginTest();
      expect(await settings(b)).toEqual({ mem: '4MB', path: 'public', timeout: '7s' });
      expect(await settings(a)).toEqual({ mem: '8MB', path: 'pg_catalog, public', timeout: '0' });
      await served.proxy.endTest();
      await served.proxy.beginTest();
      expect(await settings(a)).toEqual({ mem: '8MB', path: 'pg_catalog, public', timeout: '0' });
      expect(await settings(b)).toEqual({ mem: '4MB', path: 'public', timeout: '7s' });
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('moves now() between tests', async () => {
    const first = (await scalar('SELECT now()')) as Date;
    await served.proxy.endTest();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await served.proxy.beginTest();
    expect(((await scalar('SELECT now()')) as Date).getTime()).toBeGreaterThan(first.getTime());
  });
  describe('several clients in one test', () => {
    const connected = async (): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    };

    it("answers another client while one holds a transaction, inside it: it sees the transaction's rows", async () => {
      const [a, b] = await Promise.all([connected(), connected()]);
      try {
        await a.query('BEGIN');
        await a.query("INSERT INTO items (name) VALUES ('in a transaction')");
        // PostgreSQL would answer 0 here; one engine has one transaction, and the other client runs in it.
        const seen = await b.query("SELECT count(*)::int AS n FROM items WHERE name = 'in a transaction'");
        expect(seen.rows).toEqual([{ n: 1 }]);
        await b.query("INSERT INTO items (name) VALUES ('by the other client')");
        await a.query('COMMIT');
        expect(
          await scalar(
            "SELECT count(*)::int FROM items WHERE name LIKE '%client' OR name = 'in a transaction'",
          ),
        ).toBe(2);
      } finally {
        await Promise.all([a.end(), b.end()]);
      }
    });

    it('a ROLLBACK of the first client undoes what the others did after its BEGIN; a failed statement of another undoes only itself', async () => {
      const [a, b] = await Promise.all([connected(), connected()]);
      try {
        await a.query('BEGIN');
        await b.query("INSERT INTO items (name) VALUES ('after the BEGIN')");
        await expect(b.query("INSERT INTO items (name) VALUES ('seeded')")).rejects.toMatchObject({
          code: '23505',
        });
        expect(
          (await a.query("SELECT count(*)::int AS n FROM items WHERE name = 'after the BEGIN'")).rows,
        ).toEqual([{ n: 1 }]);
        await a.query('ROLLBACK');
        expect(await scalar("SELECT count(*)::int FROM items WHERE name = 'after the BEGIN'")).toBe(0);
      } finally {
        await Promise.all([a.end(), b.end()]);
      }
    });

    it('a second BEGIN waits for the first transaction to end; a failed transaction holds the others until its ROLLBACK', async () => {
      const [a, b] = await Promise.all([connected(), connected()]);
      try {
        const order: string[] = [];
        await a.query('BEGIN');
        const second = b.query('BEGIN').then(() => order.push('b began'));
        await a.query("INSERT INTO items (name) VALUES ('first transaction')");
        order.push('a committing');
        await a.query('COMMIT');
        await second;
        expect(order).toEqual(['a committing', 'b began']);
        await b.query('COMMIT');

        await a.query('BEGIN');
        await expect(a.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
        const waiting = b.query('SELECT 2 AS two').then((result) => {
          order.push('b answered');
          return result.rows;
        });
        order.push('a rolling back');
        await a.query('ROLLBACK');
        expect(await waiting).toEqual([{ two: 2 }]);
        expect(order.slice(-2)).toEqual(['a rolling back', 'b answered']);
      } finally {
        await Promise.all([a.end(), b.end()]);
      }
    });
  });
});

describe('test transactions on a proxy not serving them', () => {
  it('are refused with a clear error', async () => {
    const served = await startServedEngine();
    try {
      await expect(served.proxy.beginTest()).rejects.toBeInstanceOf(InvalidInputError);
    } finally {
      await served.close();
    }
  });
});
