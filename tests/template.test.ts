import { cpSync, existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { InteractiveRuntime, PglitePaths, prepareTemplate, TemplateBuildError } from 'pglite-oxide';
import { describe, expect, it, vi } from 'vitest';
import { exitOf, spawnPackageScript } from './helpers/child.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';

async function project(files: Record<string, string>): Promise<string> {
  const dir = await tempRoot('pglite-oxide-project-');
  for (const [name, sql] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), sql);
  }
  return dir;
}

const MIGRATIONS = {
  'migrations/1_users.sql': 'CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);',
  'migrations/2_posts.sql':
    'CREATE TABLE posts (id serial PRIMARY KEY, user_id int REFERENCES users, title text);',
  'migrations/10_index.sql': 'CREATE INDEX posts_user ON posts (user_id);',
  'seed/users.sql': "INSERT INTO users (email) VALUES ('a@example.com'), ('b@example.com');",
};

async function rowsOf(templatePgdata: string, runtimeRoot: string, sql: string): Promise<unknown[]> {
  // Suites open a copy of the template, never the template itself.
  const copy = path.join(await tempRoot(), 'pgdata');
  cpSync(templatePgdata, copy, { recursive: true });
  const runtime = await InteractiveRuntime.start(new PglitePaths(runtimeRoot, copy));
  try {
    return (await (await runtime.pglite()).query(sql)).rows;
  } finally {
    await runtime.close();
  }
}

describe('prepareTemplate', () => {
  it('applies migrations in numeric order and the seed, once, then reuses the template', async () => {
    const dir = await project(MIGRATIONS);
    const cacheDir = await freshCacheDir();
    const options = { migrations: path.join(dir, 'migrations'), seed: path.join(dir, 'seed'), cacheDir };
    const first = await prepareTemplate(options);
    expect(first.reused).toBe(false);
    expect(await rowsOf(first.pgdata, first.runtimeRoot, 'SELECT email FROM users ORDER BY id')).toEqual([
      { email: 'a@example.com' },
      { email: 'b@example.com' },
    ]);
    expect(
      await rowsOf(
        first.pgdata,
        first.runtimeRoot,
        "SELECT indexname FROM pg_indexes WHERE indexname = 'posts_user'",
      ),
    ).toHaveLength(1);

    const second = await prepareTemplate(options);
    expect(second).toMatchObject({ reused: true, key: first.key, pgdata: first.pgdata });

    // A changed migration is a new template.
    await fs.appendFile(
      path.join(dir, 'migrations/2_posts.sql'),
      '\nALTER TABLE posts ADD COLUMN body text;',
    );
    const changed = await prepareTemplate(options);
    expect(changed.reused).toBe(false);
    expect(changed.key).not.toBe(first.key);
    expect(await rowsOf(changed.pgdata, changed.runtimeRoot, 'SELECT body FROM posts')).toEqual([]);
  });

  it('runs a setup function after the SQL files, with the engine and a connection string to it', async () => {
    const template = await prepareTemplate({
      cacheDir: await freshCacheDir(),
      setup: async ({ pglite, connectionString }) => {
        await pglite.exec("CREATE TABLE from_code (v text); INSERT INTO from_code VALUES ('set up by code')");
        // As a migrator with a pg connection would.
        const client = new pg.Client({ connectionString });
        await client.connect();
        await client.query('BEGIN');
        await client.query("INSERT INTO from_code VALUES ('migrated through a connection')");
        await client.query('COMMIT');
        await client.end();
      },
    });
    expect(await rowsOf(template.pgdata, template.runtimeRoot, 'SELECT v FROM from_code ORDER BY v')).toEqual(
      [{ v: 'migrated through a connection' }, { v: 'set up by code' }],
    );
  });

  it('fails with the file, line and PostgreSQL error, and leaves no half-built template', async () => {
    const dir = await project({
      'migrations/1_ok.sql': 'CREATE TABLE fine (id int);',
      'migrations/2_broken.sql': 'CREATE TABLE also_fine (id int);\nSELECT * FROM missing_table;',
    });
    const cacheDir = await freshCacheDir();
    const failure = prepareTemplate({ migrations: path.join(dir, 'migrations'), cacheDir });
    await expect(failure).rejects.toBeInstanceOf(TemplateBuildError);
    await expect(failure).rejects.toThrow(
      /2_broken\.sql \(line 2\) failed: relation "missing_table" does not exist \[SQLSTATE 42P01\]/,
    );
    const left = readdirSync(path.join(cacheDir, 'templates')).filter((entry) => !entry.endsWith('.lock'));
    expect(left).toEqual([]);
  });

  it('names the line, DETAIL and HINT of an error at run time, which PostgreSQL gives no position for', async () => {
    const dir = await project({
      'migrations/1_users.sql': 'CREATE TABLE users (id int PRIMARY KEY);',
      'migrations/2_orders.sql':
        '-- orders belong to users\nCREATE TABLE orders (user_id int REFERENCES users (id));\n\n' +
        'INSERT INTO orders VALUES (42);\n',
    });
    const failure = prepareTemplate({
      migrations: path.join(dir, 'migrations'),
      cacheDir: await freshCacheDir(),
    });
    await expect(failure).rejects.toThrow(
      /2_orders\.sql \(line 4\) failed: insert or update on table "orders" violates foreign key constraint "orders_user_id_fkey" \[SQLSTATE 23503\]\n {2}DETAIL: Key \(user_id\)=\(42\) is not present in table "users"\./,
    );
  });

  it('applies no *.down.sql, says so when a folder has nothing to apply, and refuses a misspelled option', async () => {
    const dir = await project({
      'migrations/001_items.up.sql': 'CREATE TABLE items (id int);',
      'migrations/001_items.down.sql': 'DROP TABLE items;',
      'seed/.keep': '',
    });
    const warnings: string[] = [];
    const warn = vi
      .spyOn(console, 'warn')
      .mockImplementation((message: string) => void warnings.push(message));
    try {
      const template = await prepareTemplate({
        migrations: path.join(dir, 'migrations'),
        seed: path.join(dir, 'seed'),
        cacheDir: await freshCacheDir(),
      });
      expect(
        await rowsOf(template.pgdata, template.runtimeRoot, 'SELECT count(*)::int AS n FROM items'),
      ).toEqual([{ n: 0 }]);
    } finally {
      warn.mockRestore();
    }
    expect(warnings).toEqual([`pglite-oxide: ${path.join(dir, 'seed')} has no .sql files to apply.`]);
    await expect(prepareTemplate({ migration: './migrations' } as never)).rejects.toThrow(
      'pglite-oxide: unknown option "migration" in prepareTemplate(); did you mean "migrations"?',
    );
  });

  it('is built once when parallel processes ask for it at the same time', async () => {
    const dir = await project({ 'm/1.sql': 'CREATE TABLE parallel_built (id int);' });
    const body = `const t = await ox.prepareTemplate({ migrations: ${JSON.stringify(path.join(dir, 'm'))} }); console.log(t.reused ? 'reused' : 'built');`;
    const env = { PGLITE_OXIDE_CACHE_DIR: await freshCacheDir() };
    const children = [
      spawnPackageScript(body, env),
      spawnPackageScript(body, env),
      spawnPackageScript(body, env),
    ];
    expect(await Promise.all(children.map(exitOf))).toEqual([0, 0, 0]);
    const outcomes = children.flatMap((child) => child.lines).sort();
    expect(outcomes).toEqual(['built', 'reused', 'reused']);
    expect(existsSync(path.join(dir, 'm'))).toBe(true);
  });
});
