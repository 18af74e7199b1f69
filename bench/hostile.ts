/**
 * What hostile or careless clients cost the others, with the anchor each figure compares to in
 * the same run:
 * - 10, 100 and 200 MB INSERT literals through the proxy vs a native PostgreSQL (200 MB should
 *   cost about twice 100 MB), and another client's SELECT 1 meanwhile;
 * - a long statement (pg_sleep) vs another client's login and query, engine in this thread vs in
 *   a thread of its own (as serve and run have it);
 * - a login while another client holds a transaction open, vs a native PostgreSQL;
 * - silent connections vs a real login; wrong passwords per second;
 * - SIGINT to `pglite-oxide serve` in the middle of a statement, to exit.
 *
 *   npm run bench:hostile            (-- big, or -- logins: that part only)
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { InteractiveRuntime, installAndInitIn, startProxy } from '../src/index.js';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { startNativePostgres } from './native-postgres.js';

const MB = 1024 * 1024;
const run = promisify(execFile);
const require = createRequire(import.meta.url);

async function newRoot(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-'));
}

async function connect(url: string, options: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, ...options });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Round trips of SELECT 1 by another client until `until` settles: the slowest, in ms. */
async function bystander(url: string, until: Promise<unknown>): Promise<number> {
  const client = await connect(url);
  let done = false;
  void until.finally(() => {
    done = true;
  });
  let slowest = 0;
  while (!done) {
    const started = performance.now();
    await client.query('SELECT 1');
    slowest = Math.max(slowest, performance.now() - started);
  }
  await client.end();
  return slowest;
}

/** Big INSERT literals through the proxy, beside a native PostgreSQL when its binaries exist. */
async function bigStatements(url: string): Promise<void> {
  const native = await startNativePostgres();
  const sizes = [10, 100, 200];
  const times = { proxy: new Map<number, number>(), native: new Map<number, number>() };
  try {
    for (const [side, target] of [
      ['proxy', url],
      ['native', native?.url],
    ] as const) {
      if (!target) continue;
      const client = await connect(target);
      await client.query('CREATE TABLE big (body text)');
      for (const size of sizes) {
        const literal = 'x'.repeat(size * MB);
        const started = performance.now();
        const sent = client.query(`INSERT INTO big VALUES ('${literal}')`);
        const slowest = side === 'proxy' ? await bystander(url, sent) : null;
        await sent;
        times[side].set(size, performance.now() - started);
        await client.query('TRUNCATE big');
        if (slowest !== null)
          console.log(
            `${size} MB INSERT literal through the proxy: another client's slowest SELECT 1 meanwhile ${slowest.toFixed(1)} ms`,
          );
      }
      await client.end();
    }
  } finally {
    await native?.stop();
  }
  const row = (size: number) =>
    `${`${size} MB`.padEnd(8)} ${`${times.proxy.get(size)?.toFixed(0)} ms`.padStart(10)} ${native ? `${times.native.get(size)?.toFixed(0)} ms`.padStart(12) : ''}`;
  console.log(`\nINSERT literal    proxy ${native ? '  native PG' : ''}`);
  for (const size of sizes) console.log(row(size));
  const growth = (side: 'proxy' | 'native') => (times[side].get(200)! / times[side].get(100)!).toFixed(2);
  console.log(
    `200 MB / 100 MB: proxy ${growth('proxy')}x${native ? `, native ${growth('native')}x` : ''} (linear: 2.0x)\n`,
  );
}

/** A client in a process of its own: waits `delayMs`, then logs in and runs SELECT 1; prints its own timings. */
const LATE_CLIENT = `
const pg = require(process.env.PG_PATH);
setTimeout(async () => {
  const started = performance.now();
  const client = new pg.Client(process.env.URL);
  await client.connect();
  const login = performance.now() - started;
  await client.query('SELECT 1');
  process.stdout.write(JSON.stringify({ login, query: performance.now() - started }));
  await client.end();
}, Number(process.env.DELAY_MS));
`;

async function longStatement(name: string, url: string): Promise<void> {
  const late = run(process.execPath, ['-e', LATE_CLIENT], {
    env: { ...process.env, PG_PATH: require.resolve('pg'), URL: url, DELAY_MS: '300' },
  });
  const sleeper = await connect(url);
  await sleeper.query('SELECT pg_sleep(2)');
  const { login, query } = JSON.parse((await late).stdout) as { login: number; query: number };
  await sleeper.end();
  console.log(
    `${name}: during a 2 s pg_sleep, another client (own process) logged in after ${login.toFixed(1)} ms; its SELECT 1 waited for the engine: ${query.toFixed(0)} ms`,
  );
}

/**
 * Logins while another client holds a transaction open (BEGIN; LOCK TABLE), as a role that is
 * not the engine's own (its password and rights are looked up): the median of 20, beside a
 * native PostgreSQL's.
 */
async function loginsWhileHeld(url: string): Promise<void> {
  const native = await startNativePostgres();
  const medians: string[] = [];
  try {
    for (const [side, target] of [
      ['proxy', url],
      ['native PG', native?.url],
    ] as const) {
      if (!target) continue;
      const admin = await connect(target);
      await admin.query('CREATE ROLE bench_app LOGIN; CREATE TABLE bench_held (id int)');
      await admin.query('BEGIN; LOCK TABLE bench_held');
      const asApp = new URL(target);
      asApp.username = 'bench_app';
      const times: number[] = [];
      for (let login = 0; login < 20; login++) {
        const started = performance.now();
        const client = await connect(asApp.href);
        times.push(performance.now() - started);
        await client.end();
      }
      await admin.query('ROLLBACK; DROP TABLE bench_held; DROP ROLE bench_app');
      await admin.end();
      times.sort((a, b) => a - b);
      medians.push(`${side} ${times[10]!.toFixed(1)} ms`);
    }
  } finally {
    await native?.stop();
  }
  console.log(`A login while another client holds a transaction open (median of 20): ${medians.join(', ')}`);
}

async function silentFlood(url: string, port: number): Promise<void> {
  const silent = await Promise.all(
    Array.from(
      { length: 100 },
      () =>
        new Promise<net.Socket>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
          socket.on('error', () => {});
        }),
    ),
  );
  const started = performance.now();
  const client = await connect(url);
  await client.query('SELECT 1');
  console.log(
    `100 silent connections open: a real client logged in and queried in ${(performance.now() - started).toFixed(1)} ms`,
  );
  await client.end();
  for (const socket of silent) socket.destroy();
}

async function passwordGuesses(runtime: InteractiveRuntime): Promise<void> {
  const proxy = await startProxy({ runtime, port: 0, password: 'right' });
  const end = performance.now() + 3_000;
  let guesses = 0;
  // As an attacker would: many connections at once.
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (performance.now() < end) {
        const client = new pg.Client({
          host: '127.0.0.1',
          port: proxy.port,
          user: 'postgres',
          database: 'postgres',
          password: 'wrong',
        });
        await client.connect().catch(() => {});
        guesses++;
      }
    }),
  );
  console.log(`wrong passwords, 32 connections at once: ${(guesses / 3).toFixed(0)} guesses/s`);
  await proxy.close();
}

async function stopMidStatement(): Promise<void> {
  const cli = path.resolve('dist/cli.js');
  const root = path.join(await newRoot(), 'db');
  const child: ChildProcess = spawn(process.execPath, [cli, 'serve', '--data', root], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const url = await new Promise<string>((resolve) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString().split('\n')[0]!.trim()));
  });
  const client = await connect(url);
  void client
    .query('SELECT count(*) FROM generate_series(1, 30000) a, generate_series(1, 30000) b')
    .catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 300));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const started = performance.now();
  child.kill('SIGINT');
  await exited;
  console.log(
    `pglite-oxide serve --data, SIGINT during a statement that computes for minutes: exited in ${(performance.now() - started).toFixed(0)} ms`,
  );
}

/** Engine and process memory around a 200 MB COPY FROM STDIN, as psql's \copy sends it. */
async function copyMemory(engine: ThreadedEngine, url: string): Promise<void> {
  const rss = () => (process.memoryUsage().rss / MB).toFixed(0);
  const before = `${engine.memoryMiB} MiB engine, ${rss()} MiB process`;
  const copier = await connect(url);
  await copier.query('CREATE TABLE copied (body text)');
  const row = `${'y'.repeat(999)}\n`;
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < 200; i++) yield row.repeat(1024);
      })(),
    ),
    copier.query(copyFrom('COPY copied FROM STDIN')),
  );
  await copier.end();
  const after = `${engine.memoryMiB} MiB engine, ${rss()} MiB process`;
  globalThis.gc?.();
  console.log(`200 MB COPY FROM STDIN: before ${before}; after ${after}; after a GC ${rss()} MiB process`);
}

async function main(): Promise<void> {
  console.log(`pglite-oxide hostile-client bench: ${os.cpus().length} CPUs, Node ${process.version}\n`);
  const only = process.argv[2];
  if (only === 'big' || only === 'logins') {
    // One part only: npm run bench:hostile -- big (or logins)
    const runtime = await InteractiveRuntime.start(await installAndInitIn(await newRoot()));
    const proxy = await startProxy({ runtime, port: 0, maxMessageBytes: 512 * MB });
    await (only === 'big' ? bigStatements : loginsWhileHeld)(proxy.connectionString);
    await proxy.close();
    await runtime.close();
    return;
  }
  const paths = await installAndInitIn(await newRoot());
  const engine = await ThreadedEngine.start({
    kind: 'disk',
    runtimeRoot: paths.pgroot,
    pgdata: paths.pgdata,
  });
  const threaded = await startThreadedProxy(engine, { port: 0, maxMessageBytes: 512 * MB });
  await copyMemory(engine, threaded.connectionString);
  await longStatement('engine in its own thread (serve, run)', threaded.connectionString);
  await threaded.close();
  const runtime = await InteractiveRuntime.start(await installAndInitIn(await newRoot()));
  const proxy = await startProxy({ runtime, port: 0, maxMessageBytes: 512 * MB });
  await longStatement('engine in this thread', proxy.connectionString);
  await loginsWhileHeld(proxy.connectionString);
  await bigStatements(proxy.connectionString);
  await silentFlood(proxy.connectionString, proxy.port);
  await proxy.close();
  await passwordGuesses(runtime);
  await runtime.close();
  await stopMidStatement();
}

await main();
