import pg from 'pg';
import { startSuiteDatabase } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { itemsTemplate } from './helpers/items-template.js';

describe('startSuiteDatabase', () => {
  it('serves a copy of the template to real clients and resets it exactly', async () => {
    const suite = await startSuiteDatabase(await itemsTemplate());
    try {
      expect(suite.env.DATABASE_URL).toBe(suite.connectionString);
      expect(suite.env.PGHOST).toBe('127.0.0.1');
      const client = new pg.Client({ connectionString: suite.connectionString });
      await client.connect();
      const inserted = await client.query("INSERT INTO items (name) VALUES ('new') RETURNING id");
      expect(inserted.rows).toEqual([{ id: 2 }]);
      await client.query('DROP TABLE items');
      await client.end();

      const report = await suite.reset();
      expect(report.path).toBe('snapshot');

      const after = new pg.Client({ connectionString: suite.connectionString });
      await after.connect();
      expect((await after.query('SELECT name FROM items ORDER BY id')).rows).toEqual([{ name: 'seeded' }]);
      // Sequences come back too: the next id is the one after the template's.
      expect((await after.query("INSERT INTO items (name) VALUES ('again') RETURNING id")).rows).toEqual([
        { id: 2 },
      ]);
      await after.end();
    } finally {
      await suite.close();
    }
    await expect(suite.runtime.execInteractive('SELECT 1')).rejects.toMatchObject({ code: 'RUNTIME_CLOSED' });
  });

  it("keeps a connected client's session across resets: settings, named statements, LISTEN", async () => {
    const suite = await startSuiteDatabase(await itemsTemplate());
    const client = new pg.Client({
      connectionString: suite.connectionString,
      options: '-c statement_timeout=4s',
    });
    const notified: string[] = [];
    client.on('notification', (message) => notified.push(`${message.channel}:${message.payload}`));
    await client.connect();
    const count = { name: 'count-items', text: 'SELECT count(*)::int AS n FROM items' };
    const session = async () => ({
      timeout: (await client.query('SHOW statement_timeout')).rows[0].statement_timeout,
      path: (await client.query('SHOW search_path')).rows[0].search_path,
      items: (await client.query(count)).rows[0].n,
    });
    try {
      await client.query(
        "SET search_path = pg_catalog, public; LISTEN jobs; INSERT INTO items (name) VALUES ('gone')",
      );
      expect(await session()).toEqual({ timeout: '4s', path: 'pg_catalog, public', items: 2 });

      expect((await suite.reset()).path).toBe('snapshot');
      expect(await session()).toEqual({ timeout: '4s', path: 'pg_catalog, public', items: 1 });

      // A library loaded after the snapshot makes the next reset start a new engine: the same holds.
      await client.query("SELECT to_tsvector('english', 'running dogs')");
      expect((await suite.reset()).path).toBe('reopen');
      expect(await session()).toEqual({ timeout: '4s', path: 'pg_catalog, public', items: 1 });

      await client.query("NOTIFY jobs, 'after two resets'");
      await client.query('SELECT 1');
      expect(notified).toEqual(['jobs:after two resets']);
    } finally {
      await client.end();
      await suite.close();
    }
  });
});
