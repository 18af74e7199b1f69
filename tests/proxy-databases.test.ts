import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';

const run = promisify(execFile);

// Every database of the cluster can be connected to, each served by an engine of its own.
describe('databases', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;

  const connect = async (database: string) => {
    const client = new pg.Client({ host: '127.0.0.1', port: served.proxy.port, user: 'postgres', database });
    await client.connect();
    return client;
  };
  const scalar = async (client: pg.Client, sql: string) =>
    Object.values((await client.query(sql)).rows[0] ?? {})[0];

  beforeAll(async () => {
    served = await startServedEngine();
    const main = await connect('postgres');
    await main.query("CREATE TABLE accounts (email text); INSERT INTO accounts VALUES ('a@a.a')");
    await main.end();
  });
  afterAll(() => served.close());

  it('serves postgres (the main one) and template1, each with its own data', async () => {
    const main = await connect('postgres');
    const template = await connect('template1');
    try {
      expect(await scalar(main, 'SELECT current_database()')).toBe('postgres');
      expect(await scalar(template, 'SELECT current_database()')).toBe('template1');
      expect(await scalar(main, 'SELECT count(*)::int FROM accounts')).toBe(1);
      await expect(template.query('SELECT * FROM accounts')).rejects.toMatchObject({ code: '42P01' });
    } finally {
      await main.end();
      await template.end();
    }
  });

  it('connects to a database made by CREATE DATABASE, as an empty copy of template1, and drops it', async () => {
    const main = await connect('postgres');
    try {
      await main.query('CREATE DATABASE app_test');
      const app = await connect('app_test');
      const other = await connect('app_test');
      await app.query('CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)');
      expect(await scalar(app, 'SELECT current_database()')).toBe('app_test');
      // Interleaved with a client of another database, each sees its own.
      expect(await scalar(other, 'SELECT count(*)::int FROM orders')).toBe(1);
      expect(await scalar(main, 'SELECT count(*)::int FROM accounts')).toBe(1);
      await expect(main.query('SELECT * FROM orders')).rejects.toMatchObject({ code: '42P01' });
      expect(await scalar(other, "SELECT count(*)::int FROM pg_class WHERE relname = 'accounts'")).toBe(0);

      await expect(main.query('DROP DATABASE app_test')).rejects.toMatchObject({
        code: '55006',
        message: 'database "app_test" is being accessed by other users',
        detail: 'There are 2 other sessions using the database.',
      });
      await app.end();
      await other.end();
      const copy = path.join(served.root, 'pglite', 'databases', 'db_app_test');
      expect(existsSync(path.join(copy, 'PG_VERSION'))).toBe(true);
      await main.query('DROP DATABASE app_test');
      await expect(connect('app_test')).rejects.toMatchObject({
        code: '3D000',
        message: 'database "app_test" does not exist',
      });
      expect(existsSync(copy)).toBe(false);
    } finally {
      await main.end();
    }
  });

  it('ends the clients of a database dropped WITH (FORCE)', async () => {
    const main = await connect('postgres');
    await main.query('CREATE DATABASE forced');
    const doomed = await connect('forced');
    const ended = new Promise<Error>((resolve) => doomed.on('error', resolve));
    try {
      await main.query('DROP DATABASE forced WITH (FORCE)');
      expect(await ended).toMatchObject({ code: '57P01' });
    } finally {
      await main.end();
      await doomed.end().catch(() => {});
    }
  });

  it('refuses what PostgreSQL refuses, in its words, and runs CREATE DATABASE from any database', async () => {
    await expect(connect('nope')).rejects.toMatchObject({
      code: '3D000',
      message: 'database "nope" does not exist',
    });
    await expect(connect('template0')).rejects.toMatchObject({
      code: '55000',
      message: 'database "template0" is not currently accepting connections',
    });
    const template = await connect('template1');
    try {
      await template.query('CREATE DATABASE elsewhere');
      await expect(template.query('BEGIN; CREATE DATABASE in_block')).rejects.toMatchObject({
        code: '25001',
      });
      await template.query('ROLLBACK');
      await template.query('DROP DATABASE elsewhere');
    } finally {
      await template.end();
    }
  });

  it('lets psql, createdb and dropdb work as on a server', async () => {
    const url = (database: string) => `postgresql://postgres@127.0.0.1:${served.proxy.port}/${database}`;
    await run('createdb', [
      '-h',
      '127.0.0.1',
      '-p',
      String(served.proxy.port),
      '-U',
      'postgres',
      'made_by_createdb',
    ]);
    const { stdout } = await run('psql', [url('made_by_createdb'), '-Atc', 'SELECT current_database()']);
    expect(stdout.trim()).toBe('made_by_createdb');
    const listed = await run('psql', [url('postgres'), '-Atc', 'SELECT datname FROM pg_database ORDER BY 1']);
    expect(listed.stdout.trim().split('\n')).toEqual([
      'made_by_createdb',
      'postgres',
      'template0',
      'template1',
    ]);
    // createdb -T from a template made in another database, then dropdb, from the client tools.
    const tool = (name: string, ...args: string[]) =>
      run(name, ['-h', '127.0.0.1', '-p', String(served.proxy.port), '-U', 'postgres', ...args]);
    await run('psql', [
      url('made_by_createdb'),
      '-c',
      'CREATE TABLE seeded (v int); INSERT INTO seeded VALUES (3)',
    ]);
    await tool('createdb', '-T', 'made_by_createdb', 'copied_by_createdb');
    const copied = await run('psql', [url('copied_by_createdb'), '-Atc', 'SELECT v FROM seeded']);
    expect(copied.stdout.trim()).toBe('3');
    await tool('dropdb', 'copied_by_createdb');
    await tool('dropdb', 'made_by_createdb');
    const left = await run('psql', [url('template1'), '-Atc', 'SELECT datname FROM pg_database ORDER BY 1']);
    expect(left.stdout.trim().split('\n')).toEqual(['postgres', 'template0', 'template1']);
  });
});
