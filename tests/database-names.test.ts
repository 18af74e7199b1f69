import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { startEphemeralDatabase } from '../src/cli/ephemeral.js';
import { databaseDirName } from '../src/proxy/database/database-engines.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { tempRoot } from './helpers/temp-root.js';

// A database name is a client's text: it never becomes a path. Databases named like paths are
// created, used and dropped in both modes, and files beside the proxy's own stay where they are.

const PATH_LIKE_NAMES = [
  '..',
  '.',
  '/',
  'a/../b',
  '../../etc',
  'Ünïcödé ✓',
  'it\'s "quoted"',
  'x'.repeat(63),
  'APP',
];
/** The names clients connect to, each starting an engine on a copy of its own. */
const CONNECTED = ['..', 'a/../b', 'it\'s "quoted"'];

describe('database directory names', () => {
  it('are distinct for distinct names, and made of safe characters only', () => {
    const names = [...PATH_LIKE_NAMES, 'app', 'App', 'a-b', 'a_b', 'a-2d'];
    const dirs = names.map(databaseDirName);
    expect(new Set(dirs).size).toBe(names.length);
    for (const dir of dirs) {
      expect(dir).toMatch(/^db_[a-z0-9_-]+$/);
      expect(dir.length).toBeLessThanOrEqual(3 + 63 * 3);
    }
    expect(databaseDirName('app_test')).toBe('db_app_test');
  });
});

describe('databases named like paths', () => {
  let stop: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await stop?.();
    stop = null;
  });

  /** Files that a name taken as a path would reach; each must outlive every drop. */
  async function canaries(dirs: string[]): Promise<string[]> {
    const files = dirs.map((dir) => path.join(dir, 'canary.txt'));
    for (const file of files) {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, 'still here');
    }
    return files;
  }

  /** `kept`: databases that exist before and after. */
  async function createUseAndDrop(url: string, kept: string[] = []): Promise<void> {
    const admin = new pg.Client({ connectionString: url });
    admin.on('error', () => {});
    await admin.connect();
    try {
      for (const name of PATH_LIKE_NAMES) {
        const quoted = `"${name.replaceAll('"', '""')}"`;
        await admin.query(`CREATE DATABASE ${quoted}`);
        // Each database a client connects to gets its own copy (and engine): a few show that.
        if (!CONNECTED.includes(name)) {
          await admin.query(`DROP DATABASE ${quoted}`);
          continue;
        }
        // Not through a URL, whose parser would resolve "..".
        const { hostname, port, username } = new URL(url);
        const client = new pg.Client({ host: hostname, port: Number(port), user: username, database: name });
        client.on('error', () => {});
        await client.connect();
        try {
          expect((await client.query('SELECT current_database() AS db')).rows).toEqual([{ db: name }]);
          await client.query('CREATE TABLE t (x int); INSERT INTO t VALUES (1)');
        } finally {
          await client.end();
        }
        await admin.query(`DROP DATABASE ${quoted}`);
        // Dropped already: IF EXISTS finds nothing and must remove nothing.
        await admin.query(`DROP DATABASE IF EXISTS ${quoted}`);
      }
      const { rows } = await admin.query(
        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template1', 'template0')",
      );
      expect(rows.map((row) => row.datname)).toEqual(kept);
      expect((await admin.query('SELECT 1 AS still')).rows).toEqual([{ still: 1 }]);
    } finally {
      await admin.end();
    }
  }

  it('on a data directory: the cluster and the files beside it stay', async () => {
    const served = await startServedEngine();
    stop = () => served.close();
    const databases = path.join(served.root, 'pglite', 'databases');
    const files = await canaries([
      databases,
      path.dirname(databases),
      served.root,
      path.join(databases, 'a', 'b'),
    ]);
    await createUseAndDrop(served.proxy.connectionString);
    for (const file of files) expect(await fs.readFile(file, 'utf8')).toBe('still here');
    expect(existsSync(path.join(served.root, 'pglite', 'base', 'PG_VERSION'))).toBe(true);
    // Only the proxy's own encoded directories were ever made there, and only template1's (whose
    // engine CREATE DATABASE copies) is left.
    expect((await fs.readdir(databases)).sort()).toEqual(['a', 'canary.txt', 'db_template1']);
  });

  it('in memory: the temporary directory and the other databases stay', async () => {
    const tmp = await tempRoot('pglite-oxide-tmpdir-');
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = path.join(tmp, 'tmp');
    let database: Awaited<ReturnType<typeof startEphemeralDatabase>>;
    try {
      const files = await canaries([process.env.TMPDIR, tmp, path.join(process.env.TMPDIR, 'a', 'b')]);
      database = await startEphemeralDatabase({}, { onWarning: () => {} });
      stop = () => database.close();
      const admin = new pg.Client({ connectionString: database.proxy.connectionString });
      admin.on('error', () => {});
      await admin.connect();
      await admin.query('CREATE DATABASE keeper');
      const keeperUrl = new URL(database.proxy.connectionString);
      keeperUrl.pathname = '/keeper';
      const keeper = new pg.Client({ connectionString: keeperUrl.href });
      keeper.on('error', () => {});
      await keeper.connect();
      await keeper.query('CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)');
      await createUseAndDrop(database.proxy.connectionString, ['keeper']);
      expect((await keeper.query('SELECT x FROM kept')).rows).toEqual([{ x: 7 }]);
      await keeper.end();
      await admin.query('DROP DATABASE keeper');
      await admin.end();
      for (const file of files) expect(await fs.readFile(file, 'utf8')).toBe('still here');
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
  });
});
