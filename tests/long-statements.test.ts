import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';

// A statement must not hold the engine longer than its client allows.

let served: Awaited<ReturnType<typeof startServedEngine>>;

beforeAll(async () => {
  served = await startServedEngine();
});

afterAll(async () => {
  await served?.close();
});

async function client(options: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const connected = new pg.Client({ connectionString: served.proxy.connectionString, ...options });
  await connected.connect();
  return connected;
}

describe('statement_timeout', () => {
  it('stops a sleeping, a spilling and an in-transaction statement with 57014; the session goes on', async () => {
    const c = await client();
    try {
      await c.query('SET statement_timeout = 300');
      await expect(c.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
      await expect(c.query('SELECT count(*) FROM generate_series(1, 200000000)')).rejects.toMatchObject({
        code: '57014',
        message: 'canceling statement due to statement timeout',
      });
      await c.query('BEGIN');
      await c.query('SELECT 1');
      await expect(c.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
      await c.query('ROLLBACK');
      await c.query('SET statement_timeout = 0');
      await c.query('SELECT pg_sleep(0.4)');
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it("a client's idle_in_transaction_session_timeout does not end the shared engine session", async () => {
    const c = await client();
    try {
      await c.query("SET idle_in_transaction_session_timeout = '50ms'");
      await c.query('BEGIN');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    expect(served.warnings.filter((warning) => warning.includes('engine failed'))).toEqual([]);
  });
});
