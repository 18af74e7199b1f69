import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { prepareTemplate, startSuiteDatabase } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { installAndInitIn } from '../src/install/install.js';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { asUser } from './helpers/pg-query.js';
import { freshCacheDir, tempRoot } from './helpers/temp-root.js';

// The protections live in the engine, so every engine must have them: one started again on the
// same data, one that replaced an engine a statement would not leave, one reset to a snapshot.

const ESCALATE = "SELECT pg_catalog.set_config('session_authorization', 'postgres', false)";

/** What a role that is not a superuser gets for each attempt, and its own pid. */
async function attempts(url: string): Promise<{ codes: string[]; pidIsOwn: boolean }> {
  const client = new pg.Client({ connectionString: asUser(url, 'app') });
  client.on('error', () => {});
  await client.connect();
  try {
    const codes: string[] = [];
    for (const sql of [
      ESCALATE,
      'SET SESSION AUTHORIZATION postgres',
      'SET session_replication_role = replica',
    ]) {
      codes.push(
        await client.query(sql).then(
          () => 'ok',
          (error: { code?: string }) => error.code ?? '?',
        ),
      );
    }
    const pid = Number((await client.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    return { codes, pidIsOwn: pid === (client as unknown as { processID: number }).processID };
  } finally {
    await client.end();
  }
}

/**
 * What a second client of the role gets for the first one's objects (a prepared statement, a
 * cursor, a temporary table), then whether it may make its own of the same names.
 */
async function othersObjects(url: string): Promise<string[]> {
  const first = new pg.Client({ connectionString: asUser(url, 'app') });
  const second = new pg.Client({ connectionString: asUser(url, 'app') });
  await first.connect();
  await second.connect();
  const code = (sql: string) =>
    second.query(sql).then(
      () => 'ok',
      (error: { code?: string }) => error.code ?? '?',
    );
  try {
    await first.query('PREPARE mine AS SELECT 1');
    await first.query('DECLARE held CURSOR WITH HOLD FOR SELECT 1');
    await first.query('CREATE TEMP TABLE scratch (v int)');
    return [
      await code('EXECUTE mine'),
      await code('FETCH held'),
      await code('SELECT * FROM scratch'),
      await code('PREPARE mine AS SELECT 2'),
      await code('CREATE TEMP TABLE scratch (v text)'),
    ];
  } finally {
    await first.end();
    await second.end();
  }
}

const REFUSED = { codes: ['42501', '42501', '42501'], pidIsOwn: true };
const OWN_OBJECTS = ['26000', '34000', '42P01', 'ok', 'ok'];

describe('the protections outlive the engine they were installed in', () => {
  it('in an engine started again on its data, and in one that replaced it (as when a statement will not stop)', async () => {
    const paths = await installAndInitIn(await tempRoot('pglite-oxide-lifetime-'));
    const engine = await ThreadedEngine.start({
      kind: 'disk',
      runtimeRoot: paths.pgroot,
      pgdata: paths.pgdata,
    });
    const proxy = await startThreadedProxy(engine, { tcp: true, port: 0, onWarning: () => {} });
    try {
      const admin = new pg.Client({ connectionString: proxy.connectionString });
      await admin.connect();
      await admin.query('CREATE ROLE app LOGIN');
      await admin.end();
      expect(await attempts(proxy.connectionString)).toEqual(REFUSED);
      expect(await othersObjects(proxy.connectionString)).toEqual(OWN_OBJECTS);
      await engine.restart();
      expect(await attempts(proxy.connectionString)).toEqual(REFUSED);
      expect(await othersObjects(proxy.connectionString)).toEqual(OWN_OBJECTS);
      await engine.replace('a test replaced the engine');
      expect(await attempts(proxy.connectionString)).toEqual(REFUSED);
      expect(await othersObjects(proxy.connectionString)).toEqual(OWN_OBJECTS);
    } finally {
      await proxy.close();
      await engine.close();
    }
  });

  it('across resets of a test database to its snapshot', async () => {
    const dir = await tempRoot('pglite-oxide-lifetime-project-');
    await fs.writeFile(path.join(dir, '1_roles.sql'), 'CREATE ROLE app LOGIN;');
    const template = await prepareTemplate({
      migrations: path.join(dir, '1_roles.sql'),
      cacheDir: await freshCacheDir(),
    });
    const suite = await startSuiteDatabase(template);
    try {
      expect(await attempts(suite.connectionString)).toEqual(REFUSED);
      for (let reset = 0; reset < 2; reset++) {
        const report = await suite.reset();
        expect(report.path).toBe('snapshot');
        expect(await attempts(suite.connectionString)).toEqual(REFUSED);
        expect(await othersObjects(suite.connectionString)).toEqual(OWN_OBJECTS);
      }
    } finally {
      await suite.close();
    }
  });
});
