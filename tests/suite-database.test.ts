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
});
