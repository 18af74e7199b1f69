import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServedEngine } from './helpers/proxy-engine.js';

// Each client looks like a backend of its own: the pid it got at login is its pg_backend_pid(),
// and its application_name is its own setting, whatever other clients run in between.
describe('each client is a backend', () => {
  let served: Awaited<ReturnType<typeof startServedEngine>>;
  const connect = async (applicationName?: string) => {
    const client = new pg.Client({
      connectionString: served.proxy.connectionString,
      application_name: applicationName,
    });
    await client.connect();
    return client;
  };

  beforeAll(async () => {
    served = await startServedEngine();
  });
  afterAll(() => served.close());

  it("answers pg_backend_pid() with the pid of the client's BackendKeyData, by any path", async () => {
    const first = await connect();
    const second = await connect();
    try {
      const pidOf = async (client: pg.Client, sql: string | pg.QueryConfig) =>
        Number(Object.values((await client.query(sql)).rows[0])[0]);
      const processId = (client: pg.Client) => (client as unknown as { processID: number }).processID;
      expect(processId(first)).not.toBe(processId(second));
      for (let turn = 0; turn < 2; turn++) {
        expect(await pidOf(first, 'SELECT pg_backend_pid()')).toBe(processId(first));
        expect(await pidOf(second, 'SELECT pg_backend_pid()')).toBe(processId(second));
      }
      await first.query(
        'CREATE FUNCTION my_pid() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN pg_backend_pid(); END$$',
      );
      expect(await pidOf(second, 'SELECT my_pid()')).toBe(processId(second));
      expect(await pidOf(first, { text: 'SELECT pg_backend_pid() + $1::int', values: [0] })).toBe(
        processId(first),
      );
    } finally {
      await first.end();
      await second.end();
    }
  });

  it("keeps each client's application_name, from startup and from SET", async () => {
    const api = await connect('api');
    const worker = await connect('worker');
    const unnamed = await connect();
    try {
      const name = async (client: pg.Client) =>
        (await client.query("SELECT current_setting('application_name') AS n")).rows[0].n;
      expect(await name(api)).toBe('api');
      expect(await name(worker)).toBe('worker');
      expect(await name(unnamed)).toBe('');
      await worker.query("SET application_name = 'worker-2'");
      expect(await name(api)).toBe('api');
      expect(await name(worker)).toBe('worker-2');
      await worker.query('RESET application_name');
      expect(await name(worker)).toBe('worker');
    } finally {
      await api.end();
      await worker.end();
      await unnamed.end();
    }
  });
});
