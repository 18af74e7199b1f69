import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EngineStartError, prepareTemplate, RuntimeClosedError, type Template } from 'pglite-oxide';
import { beforeAll, describe, expect, it } from 'vitest';
import { clusterImage } from '../src/runtime/cluster-image.js';
import { createResettableEngine, openMemoryEngine } from '../src/runtime/memory-engine.js';
import { tempRoot } from './helpers/temp-root.js';

let template: Template;

beforeAll(async () => {
  const dir = await tempRoot('pglite-oxide-memory-');
  await fs.mkdir(path.join(dir, 'migrations'));
  await fs.writeFile(
    path.join(dir, 'migrations', '1_notes.sql'),
    'CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);',
  );
  await fs.writeFile(
    path.join(dir, 'migrations', '2_tags.sql'),
    'CREATE TABLE tags (note_id int REFERENCES notes, tag text);',
  );
  await fs.writeFile(path.join(dir, 'seed.sql'), "INSERT INTO notes (body) VALUES ('first'), ('second');");
  template = await prepareTemplate({
    migrations: path.join(dir, 'migrations'),
    seed: path.join(dir, 'seed.sql'),
  });
});

/** A digest of every file of a directory, to prove nothing wrote into it. */
async function digestOf(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries.filter((e) => e.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = path.join(entry.parentPath, entry.name);
    hash.update(path.relative(dir, file)).update(await fs.readFile(file));
  }
  return hash.digest('hex');
}

describe('openMemoryEngine', () => {
  it('starts from the template with the toolkit defaults, and never writes to the template', async () => {
    const before = await digestOf(template.pgdata);
    const pg = await openMemoryEngine({ templatePgdata: template.pgdata, runtimeRoot: template.runtimeRoot });
    try {
      expect(pg.dataDir).toBeUndefined();
      const { rows } = await pg.query(`SELECT current_database() AS db, current_user AS usr,
        current_setting('shared_buffers') AS buffers, current_setting('TimeZone') AS tz,
        (SELECT json_agg(body ORDER BY id) FROM notes) AS notes`);
      expect(rows).toEqual([
        { db: 'postgres', usr: 'postgres', buffers: '16MB', tz: 'UTC', notes: ['first', 'second'] },
      ]);
      await pg.exec("INSERT INTO notes (body) VALUES ('third'); DROP TABLE tags; CHECKPOINT");
    } finally {
      await pg.close();
    }
    expect(await digestOf(template.pgdata)).toBe(before);
  });

  it('gives each engine of one template its own data', async () => {
    const options = { templatePgdata: template.pgdata, runtimeRoot: template.runtimeRoot };
    const [a, b] = await Promise.all([openMemoryEngine(options), openMemoryEngine(options)]);
    try {
      await a.exec("INSERT INTO notes (body) VALUES ('only in a')");
      const count = 'SELECT count(*)::int AS n FROM notes';
      expect((await a.query(count)).rows).toEqual([{ n: 3 }]);
      expect((await b.query(count)).rows).toEqual([{ n: 2 }]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('shares the template image between engines and copies only the files an engine writes', async () => {
    const options = { templatePgdata: template.pgdata, runtimeRoot: template.runtimeRoot };
    const image = await clusterImage(template.pgdata);
    expect(image.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    const before = createHash('sha256').update(image.bytes).digest('hex');
    const a = await openMemoryEngine(options);
    try {
      // Rewrites pages of files every engine reads from the image, then forces them out.
      await a.exec("UPDATE notes SET body = body || ' (changed in a)'");
      await a.exec('VACUUM notes');
      await a.exec('CHECKPOINT');
      const b = await openMemoryEngine(options);
      try {
        const bodies = 'SELECT json_agg(body ORDER BY id) AS bodies FROM notes';
        expect((await b.query(bodies)).rows).toEqual([{ bodies: ['first', 'second'] }]);
        expect((await a.query(bodies)).rows).toEqual([
          { bodies: ['first (changed in a)', 'second (changed in a)'] },
        ]);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
    expect(createHash('sha256').update(image.bytes).digest('hex')).toBe(before);
  });

  it('applies settings and environment over the defaults', async () => {
    const pg = await openMemoryEngine({
      templatePgdata: template.pgdata,
      runtimeRoot: template.runtimeRoot,
      env: { PGTZ: 'Europe/Paris', PGDATABASE: 'postgres' },
      settings: { work_mem: '8MB' },
    });
    try {
      const { rows } =
        await pg.query(`SELECT current_database() AS db, current_setting('work_mem') AS work_mem,
        current_setting('TimeZone') AS tz`);
      expect(rows).toEqual([{ db: 'postgres', work_mem: '8MB', tz: 'Europe/Paris' }]);
    } finally {
      await pg.close();
    }
  });

  it('fails with EngineStartError when there is no cluster to start from', async () => {
    const empty = await tempRoot();
    await expect(
      openMemoryEngine({ templatePgdata: empty, runtimeRoot: template.runtimeRoot }),
    ).rejects.toBeInstanceOf(EngineStartError);
  });
});

describe('createResettableEngine', () => {
  it('can be told to always reopen, which is exact too, and cannot be used once closed', async () => {
    const engine = await createResettableEngine({
      templatePgdata: template.pgdata,
      runtimeRoot: template.runtimeRoot,
      reset: 'reopen',
    });
    expect(engine.snapshot).toBeUndefined();
    expect(engine.snapshotUnavailableReason).toMatch(/reopen/);
    await engine.pglite.exec(
      "INSERT INTO notes (body) VALUES ('gone after reset'); SELECT nextval('notes_id_seq')",
    );
    const report = await engine.reset();
    expect(report).toMatchObject({ path: 'reopen' });
    expect(engine.lastReset).toBe(report);
    const { rows } = await engine.pglite.query(
      "SELECT count(*)::int AS n, nextval('notes_id_seq')::int AS next FROM notes",
    );
    expect(rows).toEqual([{ n: 2, next: 3 }]);
    await engine.close();
    await engine.close();
    await expect(engine.reset()).rejects.toBeInstanceOf(RuntimeClosedError);
  });
});
