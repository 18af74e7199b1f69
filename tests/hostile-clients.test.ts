import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dollarQuote, quoteIdent } from '../src/protocol/sql-quote.js';
import { queryRows } from './helpers/pg-query.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { RawClient } from './helpers/raw-client.js';
import { waitFor } from './helpers/wait-for.js';

// What one client does must not change what others get: settings and roles it leaves behind,
// text it sends that the proxy writes into SQL of its own, names that could meet.

const run = promisify(execFile);
let served: Awaited<ReturnType<typeof startServedEngine>>;
let url: string;

beforeAll(async () => {
  served = await startServedEngine();
  url = served.proxy.connectionString;
  await queryRows(url, 'CREATE ROLE lowpriv; CREATE SCHEMA poisoned; CREATE TABLE copied (x int)');
});

afterAll(async () => {
  await served?.close();
});

/** What a new client finds of the settings other clients could have left behind. */
async function freshSession(): Promise<Record<string, unknown>> {
  const [row] = await queryRows(
    url,
    `SELECT current_user, session_user, current_setting('search_path') AS search_path,
            current_setting('my.x', true) AS my_x, current_setting('DateStyle') AS datestyle,
            current_setting('work_mem') AS work_mem`,
  );
  return row!;
}

describe('a leaving client takes its settings with it', () => {
  it('psql: search_path, SET ROLE and a U& custom setting do not reach later clients', async () => {
    const before = await freshSession();
    await run(
      'psql',
      [
        url,
        '-X',
        '-c',
        'set search_path = poisoned, public',
        '-c',
        'set role lowpriv',
        '-c',
        'set U&"my.x" = 1',
      ],
      {
        timeout: 20_000,
      },
    );
    expect(await served.proxy.clientsGone(10_000)).toBe(true);
    // A custom setting the client that set it took with it does not exist for a later client.
    expect(await freshSession()).toEqual(before);
    expect(before).toMatchObject({ current_user: 'postgres', session_user: 'postgres', my_x: null });
  });

  it('settings changed by set_config, in a function or under another spelling are undone too', async () => {
    const before = await freshSession();
    const client = new pg.Client(url);
    await client.connect();
    await client.query("SELECT set_config('work_mem', '7MB', false)");
    await client.query("DO $$ BEGIN SET DateStyle = 'German'; END $$");
    await client.query('SET SESSION AUTHORIZATION lowpriv');
    await client.query('SET "my"."x" = 2');
    expect((await client.query('SELECT current_user')).rows[0].current_user).toBe('lowpriv');
    await client.end();
    expect(await served.proxy.clientsGone(10_000)).toBe(true);
    expect(await freshSession()).toEqual(before);
  });

  it("keeps a setting a connected client still uses, and ends another's SQL-level PREPARE", async () => {
    const stays = new pg.Client(url);
    const leaves = new pg.Client(url);
    await stays.connect();
    await leaves.connect();
    try {
      await stays.query('SET work_mem = 5000');
      await leaves.query('PREPARE leaver_plan AS SELECT 1');
      await leaves.query('SET work_mem = 5000');
      await leaves.end();
      expect(await served.proxy.clientsGone(0)).toBe(false);
      await waitFor(
        async () =>
          (
            await stays.query('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1', [
              'leaver_plan',
            ])
          ).rows[0].n === 0,
      );
      expect((await stays.query('SHOW work_mem')).rows[0].work_mem).toBe('5000kB');
    } finally {
      await stays.end();
    }
  });
});

describe('temporary objects die with their client', () => {
  it('a temp table is gone for the next connection, whether others stay connected or not', async () => {
    const bystander = new pg.Client(url);
    for (const othersConnected of [true, false]) {
      if (othersConnected) await bystander.connect();
      const first = new pg.Client(url);
      await first.connect();
      await first.query('CREATE TEMP TABLE person (name text)');
      await first.query('CREATE TEMPORARY VIEW grown_ups AS SELECT * FROM person');
      await first.end();
      const next = new pg.Client(url);
      await next.connect();
      await waitFor(
        async () =>
          (await next.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'person'")).rows[0].n ===
          0,
      );
      await next.query('CREATE TEMP TABLE person (name text)');
      await next.end();
      if (othersConnected) await bystander.end();
      expect(await served.proxy.clientsGone(10_000)).toBe(true);
    }
  });
});

describe('temporary objects of clients connected at once', () => {
  it('are each their own: the same names, each in a temporary schema of its own that others cannot read', async () => {
    const holder = new pg.Client(url);
    const other = new pg.Client(url);
    await holder.connect();
    await other.connect();
    try {
      await holder.query("CREATE TEMP TABLE basket (item text); INSERT INTO basket VALUES ('apple')");
      await other.query("CREATE TEMP TABLE basket (item text); INSERT INTO basket VALUES ('pear')");
      // Made without the words CREATE TEMP TABLE, they are the holder's own temporary objects too.
      await holder.query('CREATE TABLE pg_temp.crate (item text)');
      await holder.query('SELECT 1 AS n INTO TEMP box');
      await holder.query('CREATE OR REPLACE TEMP VIEW shelf AS SELECT 1 AS n');
      for (const name of ['crate', 'box', 'shelf'])
        await expect(other.query(`SELECT * FROM ${name}`)).rejects.toMatchObject({ code: '42P01' });
      expect((await holder.query('SELECT item FROM basket')).rows).toEqual([{ item: 'apple' }]);
      expect((await other.query('SELECT item FROM basket')).rows).toEqual([{ item: 'pear' }]);

      // By its schema's name, another client's temporary table is another session's: refused.
      const schema = (await holder.query('SELECT pg_my_temp_schema()::regnamespace::text AS s')).rows[0].s;
      expect(schema).not.toBe(
        (await other.query('SELECT pg_my_temp_schema()::regnamespace::text AS s')).rows[0].s,
      );
      for (const sql of [
        `SELECT item FROM ${schema}.basket`,
        `INSERT INTO ${schema}.basket VALUES ('plum')`,
      ]) {
        await expect(other.query(sql)).rejects.toMatchObject({
          code: '0A000',
          message: 'cannot access temporary tables of other sessions',
        });
      }
      // In a search path it is passed over: an unqualified name is never another client's table.
      await other.query(`SET search_path = ${schema}, public`);
      await other.query('DROP TABLE basket');
      await expect(other.query('SELECT item FROM basket')).rejects.toMatchObject({ code: '42P01' });
      await other.query('RESET search_path');
      // ...and the holder's table is as it was.
      expect((await holder.query('SELECT item FROM basket')).rows).toEqual([{ item: 'apple' }]);

      // Once the holder has gone, its objects went with it.
      await holder.end();
      await waitFor(
        async () =>
          (
            await other.query(
              "SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('crate', 'box', 'shelf')",
            )
          ).rows[0].n === 0,
      );
      await other.query('CREATE TEMP TABLE crate (item text)');
    } finally {
      await holder.end().catch(() => {});
      await other.end();
    }
  });
});

describe('client text never becomes SQL of the proxy', () => {
  it('a CopyFail message is only a message, with standard_conforming_strings off too', async () => {
    await queryRows(url, 'CREATE SEQUENCE IF NOT EXISTS inj_seq');
    const client = await RawClient.ready(served.proxy.port);
    try {
      client.send(serialize.query('SET standard_conforming_strings = off'));
      await client.untilReady();
      const reason = "\\' || (SELECT nextval($q$inj_seq$q$))::text; END; --$pgo$ $q$ '); SELECT 1; --";
      client.send(serialize.query('COPY copied FROM STDIN'));
      await client.untilMessage((message) => message.name === 'copyInResponse');
      client.send(serialize.copyFail(reason));
      const replies = await client.untilReady();
      const error = replies.find((message) => message.name === 'error');
      expect(error).toMatchObject({ code: '57014', message: `COPY from stdin failed: ${reason}` });
    } finally {
      client.end();
    }
    expect(await queryRows(url, 'SELECT is_called FROM inj_seq')).toEqual([{ is_called: false }]);
  });

  it('the quoting the proxy writes is read back as the same text by the engine, either string dialect', async () => {
    const client = new pg.Client(url);
    await client.connect();
    try {
      for (const conforming of ['on', 'off']) {
        await client.query(`SET standard_conforming_strings = ${conforming}`);
        await fc.assert(
          fc.asyncProperty(
            fc.string({ unit: 'grapheme', maxLength: 20 }),
            fc.string({ maxLength: 20 }),
            async (text, name) => {
              const literal = (await client.query(`SELECT ${dollarQuote(text)} AS v`)).rows[0].v;
              expect(literal).toBe(text.replaceAll('\0', ''));
              const identifier = name.replaceAll('\0', '');
              if (identifier === '' || Buffer.byteLength(identifier) > 63) return;
              const result = await client.query(`SELECT 1 AS ${quoteIdent(identifier)}`);
              expect(result.fields[0]!.name).toBe(identifier);
            },
          ),
          { numRuns: 150, seed: 7 },
        );
      }
    } finally {
      await client.end();
    }
  });

  it('LISTEN U&"..." is heard under its real name, and forgotten when the listener leaves', async () => {
    const listener = new pg.Client(url);
    const notifier = new pg.Client(url);
    await listener.connect();
    await notifier.connect();
    try {
      const heard = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
      await listener.query('LISTEN U&"chan\\0041"');
      await notifier.query(`NOTIFY "chanA", 'hello'`);
      expect(await heard).toMatchObject({ channel: 'chanA', payload: 'hello' });
      await listener.end();
      await waitFor(
        async () =>
          (await notifier.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n === 0,
      );
    } finally {
      await notifier.end();
    }
  });

  it('long statement names that differ only at the end stay apart', async () => {
    const client = new pg.Client(url);
    await client.connect();
    try {
      const stem = 's'.repeat(56);
      const first = await client.query({ name: `${stem}a`, text: "SELECT 'a' AS v" });
      const second = await client.query({ name: `${stem}b`, text: "SELECT 'b' AS v" });
      expect([first.rows[0].v, second.rows[0].v]).toEqual(['a', 'b']);
      expect((await client.query({ name: `${stem}a`, text: "SELECT 'a' AS v" })).rows[0].v).toBe('a');
    } finally {
      await client.end();
    }
  });
});

describe('settings a client asks for at startup', () => {
  it('each client sees its own, interleaved: options=-c, --name=value and startup parameters', async () => {
    const paris = new pg.Client({
      connectionString: url,
      options: '-c TimeZone=Europe/Paris -c search_path=poisoned,public',
    } as pg.ClientConfig);
    const tokyo = new pg.Client({
      connectionString: url,
      options: '--TimeZone=Asia/Tokyo',
    } as pg.ClientConfig);
    const plain = new pg.Client(url);
    await Promise.all([paris.connect(), tokyo.connect(), plain.connect()]);
    try {
      for (let round = 0; round < 3; round++) {
        expect((await paris.query('SHOW TimeZone')).rows[0].TimeZone).toBe('Europe/Paris');
        expect((await tokyo.query('SHOW TimeZone')).rows[0].TimeZone).toBe('Asia/Tokyo');
        expect((await plain.query('SHOW TimeZone')).rows[0].TimeZone).toBe('UTC');
        expect((await paris.query('SHOW search_path')).rows[0].search_path).toBe('poisoned,public');
        expect((await plain.query('SHOW search_path')).rows[0].search_path).not.toContain('poisoned');
      }
    } finally {
      await Promise.all([paris.end(), tokyo.end(), plain.end()]);
    }
  });

  it('psql with PGOPTIONS', async () => {
    const { stdout } = await run('psql', [url, '-X', '-Atc', 'SHOW search_path'], {
      env: { ...process.env, PGOPTIONS: '-c search_path=poisoned' },
      timeout: 20_000,
    });
    expect(stdout.trim()).toBe('poisoned');
  });
});
