import { spawn } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { installAndInitIn, startProxy } from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitOf, killAfterTest } from './helpers/child.js';
import { startServedEngine } from './helpers/proxy-engine.js';
import { RawClient } from './helpers/raw-client.js';
import { tempRoot } from './helpers/temp-root.js';
import { waitFor } from './helpers/wait-for.js';

let served: Awaited<ReturnType<typeof startServedEngine>>;

beforeAll(async () => {
  served = await startServedEngine({
    maxMessageBytes: 64 * 1024,
    startupTimeoutMs: 1_000,
    queueTimeoutMs: 5_000,
  });
  const client = new pg.Client(served.proxy.connectionString);
  await client.connect();
  await client.query('CREATE TABLE facts (id int PRIMARY KEY, word text)');
  await client.query("INSERT INTO facts VALUES (1, 'one'), (2, 'two')");
  await client.end();
});

afterAll(async () => {
  await served?.close();
});

/** A well-behaved client still gets right answers. */
async function expectHealthy(): Promise<void> {
  const client = new pg.Client(served.proxy.connectionString);
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT string_agg(word, ',' ORDER BY id) AS words FROM facts WHERE id > $1",
      [0],
    );
    expect(rows).toEqual([{ words: 'one,two' }]);
  } finally {
    await client.end();
  }
}

function header(type: string, length: number): Buffer {
  const bytes = Buffer.alloc(5);
  bytes.write(type, 0, 'latin1');
  bytes.writeInt32BE(length, 1);
  return bytes;
}

describe('proxy robustness', () => {
  const fatal = { severity: 'FATAL', code: '08P01' };

  it('closes on garbage before startup without a word, as PostgreSQL does', async () => {
    const client = await RawClient.connect(served.proxy.port);
    client.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await client.untilClosed()).toEqual([]);
    await expectHealthy();
  });

  it("closes quietly on a Terminate before the startup packet (pg's connect() and end() at once)", async () => {
    // node-postgres turns an ErrorResponse here into an 'error' event its caller has no handler
    // for yet, which crashes the process; PostgreSQL answers nothing, so neither does the proxy.
    const client = await RawClient.connect(served.proxy.port);
    client.send(serialize.end());
    expect(await client.untilClosed()).toEqual([]);
    await expectHealthy();
  });

  it('refuses oversized, malformed and unknown messages with FATAL 08P01', async () => {
    const cases: Buffer[] = [
      header('Q', 10 * 1024 * 1024), // over maxMessageBytes: refused from its header alone
      Buffer.concat([header('D', 20_000), Buffer.alloc(20_000)]), // Describe is a small message in Postgres
      header('Q', 2), // a length below the header's own size
      Buffer.concat([header('Q', 8), Buffer.from('abcd')]), // no terminating NUL
      Buffer.concat([header('B', 9), Buffer.from([0, 0, 0x7f, 0xff, 0])]), // counts beyond the message
      Buffer.concat([header('D', 6), Buffer.from('Z\0')]), // neither statement nor portal
      header('p', 4), // a password nobody asked for
      header('\x01', 4),
    ];
    for (const bytes of cases) {
      const client = await RawClient.ready(served.proxy.port);
      client.send(bytes);
      const messages = await client.untilClosed();
      expect(messages.at(-1)).toMatchObject(fatal);
    }
    await expectHealthy();
  });

  it('forgets a client that stops halfway through a message', async () => {
    const client = await RawClient.ready(served.proxy.port);
    client.send(Buffer.concat([serialize.query('BEGIN'), header('Q', 100), Buffer.from('SELEC')]));
    await client.untilReady();
    client.socket.destroy();
    await expectHealthy();
  });

  it('survives mutated frontend messages (fuzz), and a well-behaved client still gets right answers', async () => {
    const message = fc.oneof(
      fc.constantFrom(
        serialize.query('SELECT * FROM facts'),
        serialize.query("BEGIN; UPDATE facts SET word = 'x'"),
        serialize.parse({ name: 's1', text: 'SELECT $1::int + 1', types: [23] }),
        serialize.parse({ text: 'COPY facts FROM STDIN' }),
        serialize.bind({ statement: 's1', values: ['41'] }),
        serialize.bind({ portal: 'p1', statement: 's1', values: ['x'] }),
        serialize.describe({ type: 'S', name: 's1' }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.execute({ portal: 'p1', rows: 1 }),
        serialize.close({ type: 'S', name: 's1' }),
        serialize.sync(),
        serialize.flush(),
        serialize.copyData(Buffer.from('3\tthree\n')),
        serialize.copyDone(),
        serialize.copyFail('no'),
      ),
      fc.uint8Array({ minLength: 1, maxLength: 24 }).map((bytes) => Buffer.from(bytes)),
    );
    const mutation = fc.record({
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
      kind: fc.constantFrom('flip', 'truncate', 'none', 'insert'),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(message, { minLength: 1, maxLength: 8 }),
        mutation,
        async (messages, change) => {
          let bytes = Buffer.concat(messages);
          const at = change.at % bytes.length;
          if (change.kind === 'flip') bytes[at] = change.byte;
          if (change.kind === 'truncate') bytes = bytes.subarray(0, at);
          if (change.kind === 'insert')
            bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([change.byte]), bytes.subarray(at)]);
          const client = await RawClient.ready(served.proxy.port);
          client.send(Buffer.concat([bytes, serialize.sync()]));
          await new Promise((resolve) => setTimeout(resolve, 15));
          client.socket.destroy();
        },
      ),
      { numRuns: 150, seed: 20_250_517 },
    );
    await expectHealthy();
    expect(served.warnings.filter((warning) => warning.includes('engine failed'))).toEqual([]);
  });

  it('shuts down: stops accepting, ends clients with 57P01, closes the engine it owns', async () => {
    const paths = await installAndInitIn(await tempRoot());
    const proxy = await startProxy({ paths, port: 0, queueTimeoutMs: 30_000 });
    const idle = new pg.Client(proxy.connectionString);
    const inTransaction = new pg.Client(proxy.connectionString);
    const queued = new pg.Client(proxy.connectionString);
    const told: Array<Promise<string>> = [];
    try {
      for (const client of [idle, inTransaction, queued]) {
        told.push(
          new Promise((resolve) =>
            client.on('error', (error) => resolve((error as { code?: string }).code ?? error.message)),
          ),
        );
        await client.connect();
      }
      await inTransaction.query('BEGIN');
      const waiting = queued.query('SELECT 1').catch((error: { code?: string }) => error.code);
      await waitFor(() => proxy.clients().some((client) => client.includes('waiting for the engine')));
      // The queued client is not kept waiting for its 30 s: the shutdown ends its wait.
      await proxy.close();
      expect(proxy.runtime.isClosed).toBe(true);
      expect(await waiting).toBe('57P01');
      expect(await Promise.all(told.slice(0, 2))).toEqual(['57P01', '57P01']);
      await expect(new pg.Client(proxy.connectionString).connect()).rejects.toThrow();
    } finally {
      await proxy.close();
    }
  });

  it('runs the showcase until SIGINT, then the process exits by itself', async () => {
    const root = await tempRoot();
    const child = killAfterTest(
      spawn(process.execPath, ['--import', 'tsx', path.resolve('examples/proxy-showcase.ts'), '--tcp'], {
        env: { ...process.env, PGLITE_OXIDE_ROOT: root },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let output = '';
    const exited = exitOf(child);
    const uri = await new Promise<string>((resolve, reject) => {
      const collect = (chunk: Buffer) => {
        output += chunk;
        const found = /URI:\s+(\S+)/.exec(output);
        if (found) resolve(found[1]!);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      void exited.then((code) =>
        reject(new Error(`the showcase exited with ${code} before serving: ${output}`)),
      );
    });
    const client = new pg.Client(uri);
    client.on('error', () => {});
    await client.connect();
    await client.query('BEGIN');
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output).toContain('stopped');
  });
});
