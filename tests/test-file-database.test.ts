import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import {
  checkIsolation,
  InteractiveRuntime,
  InvalidInputError,
  type Isolation,
  installAndInitIn,
  startEngineHost,
  TestFileDatabase,
} from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepPolicy } from '../src/testing/isolation.js';
import { itemsTemplate } from './helpers/items-template.js';
import { queryRows } from './helpers/pg-query.js';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

const query = (database: TestFileDatabase, sql: string) => queryRows(database.connectionString, sql);

describe('per-test isolation around a leased database', () => {
  let host: Awaited<ReturnType<typeof startEngineHost>>;
  let keepDir: string;
  const open = (isolation: Isolation) =>
    TestFileDatabase.open({ hostAddress: host.address, isolation, keep: 'on-failure', keepDir });

  beforeAll(async () => {
    keepDir = await tempRoot('pglite-oxide-kept-');
    host = await startEngineHost({ template: await itemsTemplate(), spare: 0 });
  });
  afterAll(() => host.close());

  it("'reset' starts each test from the template, sequences included", async () => {
    const database = await open('reset');
    for (const test of ['first', 'second']) {
      await database.beforeTest();
      expect(await query(database, `INSERT INTO items (name) VALUES ('${test}') RETURNING id`)).toEqual([
        { id: 2 },
      ]);
      await database.afterTest({ failed: false, label: test });
    }
    await database.close();
  });

  it("'transaction' rolls each test back and keeps a failing one's data committed for inspection", async () => {
    const database = await open('transaction');
    await database.beforeTest();
    await query(database, "INSERT INTO items (name) VALUES ('first')");
    await database.afterTest({ failed: false, label: 'first' });
    await database.beforeTest();
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 1 }]);
    await query(database, "INSERT INTO items (name) VALUES ('evidence of a failure')");
    const message = await database.afterTest({ failed: true, label: 'transaction failure' });
    const kept = message?.match(/ at (\S+)/)?.[1];
    expect(kept).toBeDefined();
    // The next test starts from the template again, although the failing one was committed.
    await database.beforeTest();
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 1 }]);
    await database.afterTest({ failed: false, label: 'after' });
    await database.close();
  });

  it('cancels a statement a test left running (a timed-out test), and the next test starts', async () => {
    const database = await open('transaction');
    await database.beforeTest();
    const client = new pg.Client(database.connectionString);
    client.on('error', () => {});
    await client.connect();
    const leftRunning = client.query('SELECT pg_sleep(300)');
    leftRunning.catch(() => {});
    // The test ends (its timeout) with the statement still running: the database's thread is
    // busy with it, and the next test's control waits behind it until the host cancels it.
    await database.afterTest({ failed: false, label: 'timed out' });
    await database.beforeTest();
    await expect(leftRunning).rejects.toMatchObject({ code: '57014' });
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 1 }]);
    await database.afterTest({ failed: false, label: 'next' });
    await client.end();
    await database.close();
  });

  it('replaces the database when a statement a test left running computes on, and the next test starts on it', async () => {
    const database = await open('transaction');
    await database.beforeTest();
    await query(database, "INSERT INTO items (name) VALUES ('before the runaway')");
    const client = new pg.Client(database.connectionString);
    client.on('error', () => {});
    await client.connect();
    // No call out of the engine while it computes: a cancel cannot reach it.
    const runaway = client.query('SELECT count(*) FROM pg_class a, pg_class b, pg_class c, pg_class d');
    runaway.catch(() => {});
    await database.afterTest({ failed: false, label: 'timed out' });
    await database.beforeTest();
    await expect(runaway).rejects.toThrow();
    // The same address, a fresh database from the template.
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 1 }]);
    await database.afterTest({ failed: false, label: 'next' });
    await database.close();
  });

  it("keeps isolating a 'transaction' test that resets its database halfway", async () => {
    const database = await open('transaction');
    await database.beforeTest();
    await query(database, "INSERT INTO items (name) VALUES ('before the reset')");
    await database.reset();
    await query(database, "INSERT INTO items (name) VALUES ('after the reset')");
    expect(await query(database, 'SELECT name FROM items ORDER BY id')).toEqual([
      { name: 'seeded' },
      { name: 'after the reset' },
    ]);
    await database.afterTest({ failed: false, label: 'resets' });
    await database.beforeTest();
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 1 }]);
    await database.afterTest({ failed: false, label: 'after' });
    await database.close();
  });

  it("'none' lets the tests of a file share the database", async () => {
    const database = await open('none');
    await database.beforeTest();
    await query(database, "INSERT INTO items (name) VALUES ('shared')");
    await database.afterTest({ failed: false, label: 'first' });
    await database.beforeTest();
    expect(await query(database, 'SELECT count(*)::int AS n FROM items')).toEqual([{ n: 2 }]);
    await database.afterTest({ failed: false, label: 'second' });
    await database.close();
  });

  it('refuses a second test while one runs, with a message that says what to do', async () => {
    const database = await open('reset');
    await database.beforeTest();
    await expect(database.beforeTest()).rejects.toThrow(/test\.concurrent cannot run with isolation 'reset'/);
    await database.afterTest({ failed: false, label: 'first' });
    await database.close();
  });

  it('keeps a failing test database and says how to reopen it', async () => {
    const database = await open('reset');
    await database.beforeTest();
    await query(database, "INSERT INTO items (name) VALUES ('evidence')");
    const message = await database.afterTest({ failed: true, label: 'orders.test.ts places an order' });
    expect(message).toMatch(/kept the database of the failing test "orders\.test\.ts places an order" at /);
    expect(message).toContain('npx pglite-oxide serve --data');
    const kept = (await fs.readdir(keepDir)).filter((name) => name.startsWith('orders'));
    expect(kept).toEqual([expect.stringMatching(/^orders\.test\.ts-places-an-order-\d+$/)]);
    // The next test starts from the template; the kept copy has what the failing test wrote.
    await database.beforeTest();
    expect(await query(database, 'SELECT array_agg(name) AS names FROM items')).toEqual([
      { names: ['seeded'] },
    ]);
    await database.afterTest({ failed: false, label: 'next' });
    await database.close();
    const runtime = await InteractiveRuntime.start(await installAndInitIn(path.join(keepDir, kept[0]!)));
    try {
      const rows = dataRows(await runtime.execInteractive('SELECT name FROM items ORDER BY id'));
      expect(rows).toEqual([['seeded'], ['evidence']]);
    } finally {
      await runtime.close();
    }
  });
});

describe('isolation and keep options', () => {
  it('default to transaction and never, and refuse unknown values clearly', () => {
    expect(checkIsolation(undefined)).toBe('transaction');
    expect(() => checkIsolation('savepoint')).toThrow(InvalidInputError);
    expect(() => checkIsolation('savepoint')).toThrow("'transaction', 'reset', 'none'");
    expect(keepPolicy(undefined, {})).toBe('never');
    expect(keepPolicy('never', { PGLITE_OXIDE_KEEP: 'on-failure' })).toBe('on-failure');
    expect(() => keepPolicy(undefined, { PGLITE_OXIDE_KEEP: 'always' })).toThrow(/PGLITE_OXIDE_KEEP/);
  });
});
