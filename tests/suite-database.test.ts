import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { prepareTemplate, startSuiteDatabase } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';

async function template() {
  const dir = await tempRoot('pglite-oxide-project-');
  await fs.writeFile(
    path.join(dir, '1_items.sql'),
    'CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE);',
  );
  await fs.writeFile(path.join(dir, 'seed.sql'), "INSERT INTO items (name) VALUES ('seeded');");
  return prepareTemplate({
    migrations: path.join(dir, '1_items.sql'),
    seed: path.join(dir, 'seed.sql'),
    cacheDir: await freshCacheDir(),
  });
}

describe('startSuiteDatabase', () => {
  it('serves a copy of the template to real clients and resets it exactly', async () => {
    const suite = await startSuiteDatabase(await template());
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
