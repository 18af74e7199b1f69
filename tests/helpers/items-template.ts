import fs from 'node:fs/promises';
import path from 'node:path';
import { prepareTemplate, type Template } from 'pglite-oxide';
import { freshCacheDir, tempRoot } from './temp-root.js';

/** A template with one table, `items (id serial, name text UNIQUE)`, seeded with 'seeded'. */
export async function itemsTemplate(): Promise<Template> {
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
