import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';
import { tempRoot } from './helpers/temp-root.js';
import { waitFor } from './helpers/wait-for.js';

const run = promisify(execFile);

let served: Awaited<ReturnType<typeof startServedEngine>>;
let url: string;

beforeAll(async () => {
  served = await startServedEngine();
  url = served.proxy.connectionString;
});

afterAll(async () => {
  await served?.close();
});

describe('real clients through the proxy', () => {
  it('runs concurrent transactions from a pool of 10 without losing an update', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    try {
      await pool.query('CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)');
      await pool.query('INSERT INTO counters VALUES (1, 0)');
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            const { rows } = await client.query('SELECT n FROM counters WHERE id = 1');
            await new Promise((resolve) => setTimeout(resolve, i % 3));
            await client.query('UPDATE counters SET n = $1 WHERE id = 1', [rows[0].n + 1]);
            await client.query('COMMIT');
          } finally {
            client.release();
          }
        }),
      );
      expect((await pool.query('SELECT n FROM counters')).rows).toEqual([{ n: 40 }]);
    } finally {
      await pool.end();
    }
  });

  it('lets two clients prepare the statement "s1" with different SQL', async () => {
    const a = new pg.Client(url);
    const b = new pg.Client(url);
    await Promise.all([a.connect(), b.connect()]);
    try {
      for (let i = 0; i < 3; i++) {
        const [ra, rb] = await Promise.all([
          a.query({ name: 's1', text: 'SELECT $1::int * 2 AS v', values: [i] }),
          b.query({ name: 's1', text: "SELECT $1::text || '!' AS v", values: [`b${i}`] }),
        ]);
        expect(ra.rows).toEqual([{ v: i * 2 }]);
        expect(rb.rows).toEqual([{ v: `b${i}!` }]);
      }
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('copies in and out with pg-copy-streams', async () => {
    const client = new pg.Client(url);
    await client.connect();
    try {
      await client.query('CREATE TABLE copied (id int, label text)');
      const rows = Array.from({ length: 5_000 }, (_, i) => `${i}\tlabel ${i}\n`);
      await pipeline(Readable.from(rows), client.query(copyFrom('COPY copied FROM STDIN')));
      await pipeline(
        Readable.from(['id,label\n', '9001,"with, comma"\n']),
        client.query(copyFrom('COPY copied (id, label) FROM STDIN WITH (FORMAT csv, HEADER true)')),
      );
      expect((await client.query('SELECT count(*)::int AS n FROM copied')).rows).toEqual([{ n: 5_001 }]);
      expect((await client.query('SELECT label FROM copied WHERE id = 9001')).rows).toEqual([
        { label: 'with, comma' },
      ]);

      const chunks: Buffer[] = [];
      const out = client.query(copyTo('COPY (SELECT id FROM copied WHERE id < 3 ORDER BY id) TO STDOUT'));
      for await (const chunk of out) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('0\n1\n2\n');

      // A failed COPY leaves the session usable, and a failed COPY in a transaction aborts it.
      await expect(
        pipeline(Readable.from(['not a number\tx\n']), client.query(copyFrom('COPY copied FROM STDIN'))),
      ).rejects.toMatchObject({ code: '22P02' });
      await client.query('BEGIN');
      await expect(
        pipeline(Readable.from(['1\n']), client.query(copyFrom('COPY no_such_table FROM STDIN'))),
      ).rejects.toMatchObject({ code: '42P01' });
      await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await client.query('ROLLBACK');
      expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('delivers NOTIFY from one pool client to another that LISTENs, and not to others', async () => {
    const listener = new pg.Client(url);
    const bystander = new pg.Client(url);
    const sender = new pg.Client(url);
    await Promise.all([listener.connect(), bystander.connect(), sender.connect()]);
    try {
      const received: string[] = [];
      const unexpected: string[] = [];
      listener.on('notification', (n) => received.push(`${n.channel}:${n.payload}`));
      bystander.on('notification', (n) => unexpected.push(`${n.channel}:${n.payload}`));
      await listener.query('LISTEN jobs');
      await bystander.query('LISTEN other');
      await sender.query("NOTIFY jobs, 'first'");
      await sender.query('BEGIN');
      await sender.query("SELECT pg_notify('jobs', 'second')");
      await sender.query('COMMIT');
      await waitFor(() => received.length === 2);
      expect(received).toEqual(['jobs:first', 'jobs:second']);
      // The bystander's UNLISTEN of its own channel must not stop the listener's.
      await bystander.query('UNLISTEN *');
      await sender.query("NOTIFY jobs, 'third'");
      await waitFor(() => received.length === 3);
      expect(unexpected).toEqual([]);
    } finally {
      await Promise.all([listener.end(), bystander.end(), sender.end()]);
    }
  });

  it("keeps LISTEN per client by any path: a DO block, a rollback, another client's UNLISTEN", async () => {
    const listener = new pg.Client(url);
    const other = new pg.Client(url);
    await Promise.all([listener.connect(), other.connect()]);
    const channels = async (client: pg.Client) =>
      (await client.query('SELECT pg_listening_channels() AS c')).rows.map((row) => row.c);
    try {
      const received: string[] = [];
      listener.on('notification', (n) => received.push(`${n.channel}:${n.payload}`));
      // Built at run time: the proxy never reads it, the engine counts it for this client.
      await listener.query("DO $$BEGIN EXECUTE 'LISTEN ' || 'built'; END$$");
      await listener.query('BEGIN; LISTEN undone; ROLLBACK');
      await listener.query('BEGIN; SAVEPOINT s; LISTEN dropped; ROLLBACK TO s; LISTEN kept; COMMIT');
      expect(await channels(listener)).toEqual(['built', 'kept']);
      expect(await channels(other)).toEqual([]);
      // Another client's UNLISTEN, by any path, ends only its own channels.
      await other.query("DO $$BEGIN EXECUTE 'UNLISTEN ' || 'built'; END$$");
      await other.query('UNLISTEN *');
      await other.query("NOTIFY built, 'heard'; NOTIFY undone, 'not heard'");
      await waitFor(() => received.length === 1);
      expect(received).toEqual(['built:heard']);
      // Listening and notifying in one transaction: heard at its commit.
      const own = new Promise<pg.Notification>((resolve) => other.on('notification', resolve));
      await other.query("BEGIN; LISTEN own; NOTIFY own, 'mine'; COMMIT");
      expect(await own).toMatchObject({ channel: 'own', payload: 'mine' });
      expect(await channels(other)).toEqual(['own']);
      await listener.query('UNLISTEN built');
      expect(await channels(listener)).toEqual(['kept']);
    } finally {
      await Promise.all([listener.end(), other.end()]);
    }
  });

  it('serves postgres.js with its pipelining and prepared statements', async () => {
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    try {
      await sql`CREATE TABLE pjs (id serial PRIMARY KEY, name text)`;
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => sql`INSERT INTO pjs (name) VALUES (${`n${i}`})`),
      );
      const rows = await sql`SELECT count(*)::int AS n FROM pjs WHERE name LIKE ${'n%'}`;
      expect(rows[0]!.n).toBe(20);
      const [one] = await sql.begin(async (tx) => {
        await tx`INSERT INTO pjs (name) VALUES ('in tx')`;
        return tx`SELECT count(*)::int AS n FROM pjs`;
      });
      expect(one!.n).toBe(21);
      const pipelined = await Promise.all(Array.from({ length: 50 }, (_, i) => sql`SELECT ${i}::int AS i`));
      expect(pipelined.map((r) => r[0]!.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    } finally {
      await sql.end();
    }
  });

  it('serves psql with -c and -f, including \\d and \\copy', async () => {
    const dir = await tempRoot();
    const data = path.join(dir, 'rows.tsv');
    await fs.writeFile(data, '1\tone\n2\ttwo\n3\tthree\n');
    const script = path.join(dir, 'script.sql');
    await fs.writeFile(
      script,
      `CREATE TABLE psql_t (id int PRIMARY KEY, word text);\n\\copy psql_t FROM '${data}'\n\\d psql_t\nSELECT string_agg(word, ',' ORDER BY id) FROM psql_t;\n`,
    );
    const { stdout } = await run('psql', [url, '-v', 'ON_ERROR_STOP=1', '-f', script]);
    expect(stdout).toContain('COPY 3');
    expect(stdout).toContain('Table "public.psql_t"');
    expect(stdout).toContain('one,two,three');
    const out = await run('psql', [url, '-Atc', 'SELECT count(*) FROM psql_t', '-c', '\\dt psql_t']);
    expect(out.stdout).toMatch(/^3\n/);
    // Interactive use: statements from stdin, one at a time.
    const interactive = await new Promise<string>((resolve, reject) => {
      const child = spawn('psql', [url, '-At']);
      let text = '';
      child.stdout.on('data', (chunk) => {
        text += chunk;
      });
      child.on('error', reject);
      child.on('close', () => resolve(text));
      child.stdin.end(
        "BEGIN;\nINSERT INTO psql_t VALUES (4, 'four');\nSELECT count(*) FROM psql_t;\nROLLBACK;\nSELECT count(*) FROM psql_t;\n",
      );
    });
    expect(interactive).toContain('4\n');
    expect(interactive.trim().endsWith('3')).toBe(true);
  });

  it('runs pgbench with zero failed transactions and consistent balances', async () => {
    await run('pgbench', ['-i', '-s', '1', '-q', url]);
    const { stdout } = await run('pgbench', ['-c', '4', '-j', '2', '-T', '3', url]);
    expect(stdout).toMatch(/number of failed transactions: 0 /);
    const processed = Number(/transactions actually processed: (\d+)/.exec(stdout)?.[1]);
    expect(processed).toBeGreaterThan(0);
    const client = new pg.Client(url);
    await client.connect();
    try {
      const { rows } = await client.query(
        'SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint AS balance, (SELECT sum(delta) FROM pgbench_history)::bigint AS delta, (SELECT count(*) FROM pgbench_history)::int AS history',
      );
      expect(rows[0].balance).toBe(rows[0].delta);
      expect(rows[0].history).toBe(processed);
    } finally {
      await client.end();
    }
  });
});
