import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { prepareTemplate } from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restoreSnapshot, SnapshotRestoreError, takeSnapshot } from '../src/runtime/engine-snapshot.js';
import { createResettableEngine, type ResettableEngine } from '../src/runtime/memory-engine.js';
import { tempRoot } from './helpers/temp-root.js';

const SCHEMA = {
  'migrations/1_accounts.sql': `
    CREATE TABLE accounts (id serial PRIMARY KEY, email text UNIQUE NOT NULL, balance int NOT NULL DEFAULT 0);
    CREATE FUNCTION touch_balance() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN NEW.balance := NEW.balance + 0; RETURN NEW; END $$;
    CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch_balance();`,
  'migrations/2_orders.sql': `
    CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int REFERENCES accounts, total numeric(10,2));
    CREATE SEQUENCE invoice_numbers START 1000;`,
  'seed/1_rows.sql': `
    INSERT INTO accounts (email, balance) VALUES ('ada@example.com', 10), ('bob@example.com', 20);
    INSERT INTO orders (account_id, total) VALUES (1, 9.99), (2, 5.00), (2, 7.50);`,
};

/** Everything a test could leave behind, as one comparable value. */
async function stateOf(pg: PGlite): Promise<unknown> {
  const { rows } = await pg.query<Record<string, unknown>>(`SELECT
    (SELECT json_agg(a ORDER BY id) FROM accounts a) AS accounts,
    (SELECT json_agg(o ORDER BY id) FROM orders o) AS orders,
    (SELECT json_agg(json_build_array(sequencename, last_value) ORDER BY sequencename) FROM pg_sequences) AS sequences,
    (SELECT json_agg(relname ORDER BY relname) FROM pg_class WHERE relnamespace <> 'pg_catalog'::regnamespace
       AND relnamespace <> 'information_schema'::regnamespace AND relname NOT LIKE 'pg_toast%') AS relations,
    (SELECT json_agg(relfilenode ORDER BY relname) FROM pg_class WHERE relname IN ('accounts', 'orders')) AS files,
    (SELECT count(*) FROM pg_database) AS databases,
    (SELECT json_agg(name ORDER BY name) FROM pg_prepared_statements) AS prepared,
    (SELECT json_agg(name || '=' || setting ORDER BY name) FROM pg_file_settings
       WHERE sourcefile LIKE '%postgresql.auto.conf') AS altered_system,
    current_setting('search_path') AS search_path, current_setting('TimeZone') AS time_zone`);
  return { ...rows[0], inTransaction: pg.isInTransaction() };
}

let engine: ResettableEngine;
let templateState: unknown;

beforeAll(async () => {
  const dir = await tempRoot('pglite-oxide-snapshot-');
  for (const [name, sql] of Object.entries(SCHEMA)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), sql);
  }
  const template = await prepareTemplate({
    migrations: path.join(dir, 'migrations'),
    seed: path.join(dir, 'seed'),
  });
  engine = await createResettableEngine({
    templatePgdata: template.pgdata,
    runtimeRoot: template.runtimeRoot,
  });
  templateState = await stateOf(engine.pglite);
});

afterAll(async () => {
  await engine?.close();
});

/** Every file of the engine's data directory, by path: its length and a hash of its bytes. */
function dataFiles(pg: PGlite): Record<string, string> {
  const module = (pg as unknown as { mod: { FS: EmscriptenFiles } }).mod;
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of module.FS.readdir(dir)) {
      if (name === '.' || name === '..') continue;
      const at = `${dir}/${name}`;
      if (module.FS.isDir(module.FS.stat(at).mode)) walk(at);
      else {
        const bytes = module.FS.readFile(at);
        files[at] = `${bytes.length}:${createHash('sha1').update(bytes).digest('hex')}`;
      }
    }
  };
  walk(pg.dataDir ?? '/pglite/data');
  return files;
}

interface EmscriptenFiles {
  readdir(path: string): string[];
  stat(path: string): { mode: number };
  isDir(mode: number): boolean;
  readFile(path: string): Uint8Array;
}

/**
 * Runs `mutate`, resets, and checks the reset took the snapshot and came back exactly.
 * `changed`, when given, is what `stateOf` must read after `mutate`: proof it sees the change.
 */
async function mutateThenReset(
  mutate: (pg: PGlite) => Promise<unknown>,
  changed?: Record<string, unknown>,
): Promise<void> {
  await mutate(engine.pglite);
  if (changed) expect(await stateOf(engine.pglite)).toMatchObject(changed);
  const report = await engine.reset();
  expect(report.fallbackReason).toBeUndefined();
  expect(report.path).toBe('snapshot');
  expect(await stateOf(engine.pglite)).toEqual(templateState);
}

describe('engine snapshots on the pinned engine', () => {
  // If this fails after a dependency upgrade, the private internals snapshots rely on moved:
  // resets still work (by reopening) but are ~30x slower. See src/runtime/engine-snapshot.ts.
  it('takes the fast path: the internals are where this package expects them', async () => {
    expect(engine.snapshotUnavailableReason).toBeUndefined();
    expect(engine.snapshot?.heapEndAddress).toBeTypeOf('number');
    // The snapshot covers the heap, not all 128 MB of memory.
    expect(engine.snapshot!.memory.byteLength).toBeLessThan(128 * 1024 * 1024);
    await engine.pglite.exec("INSERT INTO accounts (email) VALUES ('fast@example.com')");
    const report = await engine.reset();
    expect(report).toMatchObject({ path: 'snapshot' });
  });

  it('brings sequences back: nextval after a reset is the value right after the template', async () => {
    const first = await engine.pglite.query<{ id: number }>("SELECT nextval('accounts_id_seq')::int AS id");
    expect(first.rows[0]!.id).toBe(3);
    await mutateThenReset(async (pg) => {
      await pg.exec("SELECT nextval('accounts_id_seq') FROM generate_series(1, 50)");
      await pg.exec("SELECT setval('invoice_numbers', 5000)");
    });
    const again = await engine.pglite.query<{ id: number }>("SELECT nextval('accounts_id_seq')::int AS id");
    expect(again.rows[0]!.id).toBe(3);
    await engine.reset();
  });

  it('reverts inserted, updated and deleted rows', () =>
    mutateThenReset(async (pg) => {
      await pg.exec("INSERT INTO accounts (email) VALUES ('new@example.com')");
      await pg.exec('UPDATE accounts SET balance = balance + 100');
      await pg.exec('DELETE FROM orders WHERE total < 8');
    }));

  it('brings a dropped table back', async () => {
    await mutateThenReset((pg) => pg.exec('DROP TABLE orders'));
    const { rows } = await engine.pglite.query('SELECT count(*)::int AS n FROM orders');
    expect(rows).toEqual([{ n: 3 }]);
  });

  it('undoes VACUUM FULL, TRUNCATE, CREATE INDEX and CREATE TABLE', async () => {
    await mutateThenReset(async (pg) => {
      await pg.exec('VACUUM FULL accounts');
      await pg.exec('TRUNCATE orders');
      await pg.exec('CREATE INDEX orders_total ON orders (total)');
      await pg.exec('CREATE TABLE scratch AS SELECT generate_series(1, 1000) AS n');
    });
    const { rows } = await engine.pglite.query(
      "SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'orders_total'",
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('drops temp tables and a transaction left open', async () => {
    await mutateThenReset(async (pg) => {
      await pg.exec('CREATE TEMP TABLE scratch (n int); INSERT INTO scratch VALUES (1)');
      await pg.exec("BEGIN; INSERT INTO accounts (email) VALUES ('uncommitted@example.com')");
      expect(pg.isInTransaction()).toBe(true);
    });
    // A new transaction starts cleanly: nothing of the old one is left.
    await engine.pglite.exec("BEGIN; INSERT INTO accounts (email) VALUES ('next@example.com'); COMMIT");
    await expect(engine.pglite.query('SELECT * FROM scratch')).rejects.toThrow(/does not exist/);
    await engine.reset();
  });

  it('undoes SET and session state', () =>
    mutateThenReset(
      async (pg) => {
        await pg.exec("SET search_path = nowhere, public; SET TimeZone = 'Asia/Tokyo'");
        await pg.exec('PREPARE lookup AS SELECT 1');
      },
      { search_path: 'nowhere, public', time_zone: 'Asia/Tokyo', prepared: ['lookup'] },
    ));

  it('undoes CREATE DATABASE, ALTER SYSTEM and CHECKPOINT', () =>
    mutateThenReset(
      async (pg) => {
        await pg.exec('CREATE DATABASE scratch');
        await pg.exec("ALTER SYSTEM SET work_mem = '7MB'");
        await pg.exec('CHECKPOINT');
      },
      { altered_system: ['work_mem=7MB'] },
    ));

  it('puts every file back byte for byte: pages written in place, the WAL, a truncated table', async () => {
    const filesBefore = dataFiles(engine.pglite);
    await engine.pglite.exec("UPDATE accounts SET email = email || '.changed'");
    await engine.pglite.exec('CHECKPOINT');
    await engine.pglite.exec(
      'INSERT INTO orders (account_id, total) VALUES (1, 5); CHECKPOINT; TRUNCATE orders',
    );
    expect(dataFiles(engine.pglite)).not.toEqual(filesBefore);
    const report = await engine.reset();
    expect(report.path).toBe('snapshot');
    expect(dataFiles(engine.pglite)).toEqual(filesBefore);
    expect(await stateOf(engine.pglite)).toEqual(templateState);
  });

  it('stays exact over 50 consecutive reset cycles', async () => {
    const mutations = [
      "INSERT INTO accounts (email) SELECT 'bulk' || n || '@example.com' FROM generate_series(1, 200) n",
      'DELETE FROM orders',
      'DROP TABLE orders',
      "UPDATE accounts SET email = email || '.old'",
      'VACUUM FULL orders',
      "BEGIN; SELECT nextval('orders_id_seq'); INSERT INTO orders (account_id, total) VALUES (1, 1)",
      'CREATE TEMP TABLE t AS SELECT 1 AS one',
    ];
    for (let cycle = 0; cycle < 50; cycle++) {
      await engine.pglite.exec(mutations[cycle % mutations.length]!);
      const report = await engine.reset();
      expect(report.path, `cycle ${cycle}`).toBe('snapshot');
      expect(await stateOf(engine.pglite), `cycle ${cycle}`).toEqual(templateState);
    }
  });
});

describe('falling back to reopening from the template', () => {
  it('reopens when asked, exactly, with a new engine instance', async () => {
    const before = engine.pglite;
    await before.exec("INSERT INTO accounts (email) VALUES ('reopen@example.com')");
    const report = await engine.reset({ path: 'reopen' });
    expect(report.path).toBe('reopen');
    expect(engine.pglite).not.toBe(before);
    expect(before.closed).toBe(true);
    expect(await stateOf(engine.pglite)).toEqual(templateState);
    // The new engine has its own snapshot: the next reset is fast again.
    expect((await engine.reset()).path).toBe('snapshot');
  });

  it('reopens when the restored engine does not match the fingerprint', async () => {
    // Stands in for an upgrade that changed something the snapshot does not capture.
    (engine.snapshot as { fingerprint: Uint8Array }).fingerprint = new Uint8Array([0]);
    await engine.pglite.exec('DROP TABLE orders');
    const report = await engine.reset();
    expect(report.path).toBe('reopen');
    expect(report.fallbackReason).toMatch(/fingerprint/);
    expect(await stateOf(engine.pglite)).toEqual(templateState);
    expect((await engine.reset()).path).toBe('snapshot');
  });

  it('reopens once when a library is first loaded after the snapshot, then keeps it loaded', async () => {
    const stem = "SELECT to_tsvector('english', 'running dogs')::text AS v";
    await engine.pglite.query(stem);
    const first = await engine.reset();
    expect(first.path).toBe('reopen');
    expect(first.fallbackReason).toMatch(/dict_snowball/);
    expect(await stateOf(engine.pglite)).toEqual(templateState);
    expect((await engine.pglite.query(stem)).rows).toEqual([{ v: "'dog':2 'run':1" }]);
    expect((await engine.reset()).path).toBe('snapshot');
  });
});

describe('takeSnapshot and restoreSnapshot', () => {
  it('refuse a snapshot in a transaction and a snapshot that is no longer current', async () => {
    const pg = engine.pglite;
    await pg.exec('BEGIN');
    await expect(takeSnapshot(pg)).rejects.toMatchObject({ reason: 'not-idle' });
    await pg.exec('ROLLBACK');
    const stale = engine.snapshot!;
    const fresh = await takeSnapshot(pg);
    const error = await restoreSnapshot(pg, stale).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SnapshotRestoreError);
    expect(error).toMatchObject({ reason: 'stale-snapshot', engineUntouched: true });
    await pg.exec("INSERT INTO accounts (email) VALUES ('direct@example.com')");
    const stats = await restoreSnapshot(pg, fresh);
    expect(stats.memoryBytes).toBeGreaterThan(0);
    expect(await stateOf(pg)).toEqual(templateState);
    // The engine's own snapshot was replaced: its next reset reopens, exactly.
    expect((await engine.reset()).path).toBe('reopen');
    expect(await stateOf(engine.pglite)).toEqual(templateState);
  });
});
