import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';

// Statements that reach JavaScript inside the engine (the /dev/blob device with no blob attached,
// COPY ... PROGRAM) used to unwind it without PostgreSQL's error recovery and leave every later
// query failing. Whatever SQL path reaches them, they end with an ordinary error.

let served: Awaited<ReturnType<typeof startServedEngine>>;

beforeAll(async () => {
  served = await startServedEngine();
});

afterAll(async () => {
  await served?.close();
});

const WEDGING: Array<[string, string]> = [
  ["SELECT pg_read_binary_file('/dev/' || 'blob')", '58030'],
  ["SELECT pg_read_file('/dev/blob')", '58030'],
  ["COPY guarded FROM '/dev//blob'", '58030'],
  ["COPY guarded FROM PROGRAM 'id'", '42501'],
  ["COPY guarded TO PROGRAM 'id'", '42501'],
  ["DO $$ BEGIN EXECUTE 'copy guarded to program ''id'''; END $$", '42501'],
  ["DO $$ BEGIN PERFORM pg_read_binary_file('/dev/blob'); END $$", '58030'],
];

describe('statements that used to wedge the engine', () => {
  it.each(WEDGING)('%s fails with %s and the session goes on', async (sql, code) => {
    const client = new pg.Client(served.proxy.connectionString);
    const bystander = new pg.Client(served.proxy.connectionString);
    await client.connect();
    await bystander.connect();
    try {
      await client.query('CREATE TABLE IF NOT EXISTS guarded (x text)');
      await bystander.query("INSERT INTO guarded VALUES ('before')");
      await expect(client.query(sql)).rejects.toMatchObject({ code });
      await client.query('BEGIN');
      await expect(client.query(sql)).rejects.toMatchObject({ code });
      await client.query('ROLLBACK');
      expect((await client.query('SELECT 1 AS alive')).rows).toEqual([{ alive: 1 }]);
      const { rows } = await bystander.query('SELECT count(*)::int AS n FROM guarded');
      expect(rows[0].n).toBeGreaterThan(0);
      expect(served.warnings.filter((warning) => warning.includes('engine failed'))).toEqual([]);
    } finally {
      await client.end();
      await bystander.end();
    }
  });

  it('guards the runtime API (execInteractive) the same way', async () => {
    const { runtime } = served;
    const output = await runtime.execInteractive("SELECT pg_read_binary_file('/dev/blob')");
    expect(Buffer.from(output).toString('latin1')).toContain('58030');
    expect(Buffer.from(await runtime.execInteractive('SELECT 42')).toString('latin1')).toContain('42');
  });
});
