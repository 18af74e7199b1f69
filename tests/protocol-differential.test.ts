import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NativeServer, startNativePostgres } from '../bench/native-postgres.js';
import {
  exchange,
  FUZZ_TABLE,
  frames,
  type Step,
  stepSequence,
  type WireTarget,
} from './helpers/differential.js';
import { startServedEngine } from './helpers/proxy-engine.js';

// The proxy must answer every sequence of frontend messages exactly as PostgreSQL does. Each
// sequence goes to the proxy and to a native server; their replies must match message by message.
// PGLITE_OXIDE_FUZZ_RUNS raises the number of random sequences (npm run fuzz:protocol).

const RUNS = Number(process.env.PGLITE_OXIDE_FUZZ_RUNS ?? 120);
const SEED = Number(process.env.PGLITE_OXIDE_FUZZ_SEED ?? 20261130);

let served: Awaited<ReturnType<typeof startServedEngine>>;
let native: NativeServer;
let proxyTarget: WireTarget;
let nativeTarget: WireTarget;

beforeAll(async () => {
  served = await startServedEngine();
  const started = await startNativePostgres();
  if (!started)
    throw new Error('These tests need a native PostgreSQL server (Debian: apt-get install postgresql).');
  native = started;
  for (const url of [served.proxy.connectionString, native.url]) {
    const client = new pg.Client(url);
    await client.connect();
    await client.query(`CREATE TABLE ${FUZZ_TABLE} (x int)`);
    await client.end();
  }
  proxyTarget = { port: served.proxy.port, database: served.proxy.database };
  nativeTarget = { port: Number(new URL(native.url).port), database: 'postgres' };
});

afterAll(async () => {
  await served?.close();
  await native?.stop();
});

async function expectSameReplies(steps: readonly Step[]): Promise<void> {
  const fromNative = await exchange(nativeTarget, frames(steps));
  const fromProxy = await exchange(proxyTarget, frames(steps));
  expect(fromProxy).toEqual(fromNative);
}

describe('the proxy answers like PostgreSQL', () => {
  it('an error in an extended batch: one ReadyForQuery for its Sync, and later results are not shifted', async () => {
    await expectSameReplies([
      { type: 'parse', name: '', sql: 'selec 1' },
      { type: 'sync' },
      { type: 'query', sql: 'SELECT 1' },
    ]);
    await expectSameReplies([
      { type: 'bind', portal: '', statement: 'nope', values: [] },
      { type: 'execute', portal: '', rows: 0 },
      { type: 'sync' },
      { type: 'parse', name: 's1', sql: 'SELECT $1::int' },
      { type: 'bind', portal: '', statement: 's1', values: ['7'] },
      { type: 'execute', portal: '', rows: 0 },
      { type: 'sync' },
    ]);
  });

  it('an error before Sync skips a COPY query and its data, and the server stays well', async () => {
    await expectSameReplies([
      { type: 'describe', target: 'S', name: 'nope' },
      { type: 'flush' },
      { type: 'query', sql: `COPY ${FUZZ_TABLE} FROM STDIN` },
      { type: 'copyData', data: '1\n' },
      { type: 'copyDone' },
      { type: 'sync' },
      { type: 'parse', name: '', sql: 'SELECT $1::int' },
      { type: 'bind', portal: '', statement: '', values: ['7'] },
      { type: 'execute', portal: '', rows: 0 },
      { type: 'sync' },
    ]);
    await expectSameReplies([
      { type: 'describe', target: 'S', name: 'nope' },
      { type: 'flush' },
      { type: 'query', sql: `COPY ${FUZZ_TABLE} FROM STDIN` },
      { type: 'copyFail', reason: 'because' },
    ]);
  });

  it('a message that does not belong in COPY ends the COPY with an error, not the connection', async () => {
    await expectSameReplies([
      { type: 'query', sql: `COPY ${FUZZ_TABLE} FROM STDIN` },
      { type: 'copyData', data: '1\n' },
      { type: 'parse', name: '', sql: 'SELECT 1' },
      { type: 'query', sql: `SELECT count(*)::int FROM ${FUZZ_TABLE}` },
    ]);
  });

  it('a portal whose COPY already ran is refused, and inside a transaction block that aborts it', async () => {
    await expectSameReplies([
      { type: 'copyIn', extended: true, data: ['1\n'], end: 'done' },
      { type: 'execute', portal: '', rows: 0 },
      { type: 'sync' },
    ]);
    await expectSameReplies([
      { type: 'query', sql: 'BEGIN' },
      { type: 'copyIn', extended: true, data: [], end: 'done' },
      { type: 'execute', portal: '', rows: 0 },
      { type: 'copyIn', extended: false, data: [], end: 'fail' },
    ]);
  });

  it(`random message sequences (${RUNS} runs, seed ${SEED})`, {
    timeout: 60_000 + RUNS * 1_000,
  }, async () => {
    await fc.assert(fc.asyncProperty(stepSequence, expectSameReplies), {
      numRuns: RUNS,
      seed: SEED,
      endOnFailure: false,
    });
  });
});
