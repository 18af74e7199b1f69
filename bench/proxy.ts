/**
 * Round trips through the proxy, side by side with the engine called directly, a Node server
 * that answers with canned engine replies (the floor for any server in Node), PGlite's own
 * socket server (@electric-sql/pglite-socket) and a native PostgreSQL when its binaries exist.
 * Clients run in a process of their own, as an application would, so the server side has its
 * process to itself in every column.
 *
 *   npm run bench:proxy
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { serialize } from 'pg-protocol';
import { InteractiveRuntime, installAndInitIn, startProxy } from '../src/index.js';
import { startThreadedProxy } from '../src/proxy/server.js';
import { ThreadedEngine } from '../src/runtime/threaded-engine.js';
import { freePort, NATIVE_BIN, startNativePostgres } from './native-postgres.js';
import { type CannedReplies, startNodeFloor } from './node-floor.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const CASE_MS = 2_000;
/** Untimed work first: the engine's wasm and both sides' JIT need a moment to warm up. */
const WARMUP_MS = 1_500;
const PGBENCH_SECONDS = 10;
const ROUNDS = 3;

type CaseName = 'select1' | 'param' | 'pool8' | 'turns' | 'turnsSwitching' | 'insert10k';
const CASES: Array<[CaseName, string]> = [
  ['select1', 'SELECT 1, 1 client (round trips/s)'],
  ['param', 'SELECT $1, 1 client (round trips/s)'],
  ['pool8', 'SELECT 1, pool of 8 (queries/s)'],
  ['turns', '2 clients taking turns, same settings'],
  ['turnsSwitching', '2 clients taking turns, own TimeZone'],
  ['insert10k', '10k-row INSERT (ms, best of 3)'],
];

/** The client side of one case, run in a process of its own. */
const CLIENT_PROGRAM = `
const job = JSON.parse(process.env.BENCH_CLIENT_JOB);
const pg = require(job.pgPath);
const { url, kind, durationMs, warmupMs } = job;
async function loop(client, sql, values) {
  const warm = Date.now() + warmupMs;
  while (Date.now() < warm) await client.query(sql, values ? values(0) : undefined);
  let count = 0;
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    await client.query(sql, values ? values(count) : undefined);
    count++;
  }
  return count;
}
async function main() {
  if (kind === 'pool8') {
    const pool = new pg.Pool({ connectionString: url, max: 8 });
    const clients = await Promise.all(Array.from({ length: 8 }, () => pool.connect()));
    const counts = await Promise.all(clients.map((client) => loop(client, 'SELECT 1')));
    clients.forEach((client) => client.release());
    await pool.end();
    return counts.reduce((a, b) => a + b, 0) / (durationMs / 1000);
  }
  if (kind === 'turns' || kind === 'turnsSwitching') {
    // Two clients, one query each in turn: with their own TimeZone the engine switches every time.
    const options = kind === 'turnsSwitching' ? ['-c TimeZone=Asia/Tokyo', '-c TimeZone=Europe/Paris'] : [undefined, undefined];
    const pair = options.map((option) => new pg.Client({ connectionString: url, options: option }));
    await Promise.all(pair.map((client) => client.connect()));
    const warm = Date.now() + warmupMs;
    let turn = 0;
    while (Date.now() < warm) await pair[turn++ % 2].query('SELECT 1');
    let count = 0;
    const end = Date.now() + durationMs;
    while (Date.now() < end) {
      await pair[count % 2].query('SELECT 1');
      count++;
    }
    await Promise.all(pair.map((client) => client.end()));
    return count / (durationMs / 1000);
  }
  const client = new pg.Client(url);
  await client.connect();
  try {
    if (kind === 'select1') return (await loop(client, 'SELECT 1')) / (durationMs / 1000);
    if (kind === 'param') return (await loop(client, 'SELECT $1::int', (i) => [i])) / (durationMs / 1000);
    await client.query('DROP TABLE IF EXISTS bench_rows');
    await client.query('CREATE TABLE bench_rows (id int, label text)');
    const values = Array.from({ length: 10000 }, (_, i) => "(" + i + ", 'row number " + i + "')").join(',');
    let best = Infinity;
    for (let attempt = 0; attempt < 3; attempt++) {
      await client.query('TRUNCATE bench_rows');
      const started = performance.now();
      await client.query('INSERT INTO bench_rows VALUES ' + values);
      best = Math.min(best, performance.now() - started);
    }
    return best;
  } finally {
    await client.end();
  }
}
main().then(
  (value) => process.stdout.write(JSON.stringify({ value })),
  (error) => process.stdout.write(JSON.stringify({ error: String((error && error.message) || error) })),
);
`;

async function clientCase(url: string, kind: CaseName): Promise<number> {
  const job = { url, kind, durationMs: CASE_MS, warmupMs: WARMUP_MS, pgPath: require.resolve('pg') };
  const { stdout } = await run(process.execPath, ['-e', CLIENT_PROGRAM], {
    env: { ...process.env, BENCH_CLIENT_JOB: JSON.stringify(job) },
    timeout: WARMUP_MS + CASE_MS + 60_000,
  });
  const message = JSON.parse(stdout) as { value?: number; error?: string };
  if (message.error !== undefined) throw new Error(message.error);
  return message.value!;
}

async function newRuntime(): Promise<InteractiveRuntime> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-'));
  return InteractiveRuntime.start(await installAndInitIn(root));
}

/** The engine called directly: the ceiling for anything that adds a socket. */
async function directColumn(): Promise<{ results: Map<CaseName, number>; replies: CannedReplies }> {
  const runtime = await newRuntime();
  const engine = await runtime.pglite();
  const results = new Map<CaseName, number>();
  const loop = async (bytes: (i: number) => Uint8Array) => {
    const warm = Date.now() + WARMUP_MS;
    while (Date.now() < warm) await engine.execProtocolRaw(bytes(0), { syncToFs: false });
    let count = 0;
    const end = Date.now() + CASE_MS;
    while (Date.now() < end) {
      await engine.execProtocolRaw(bytes(count), { syncToFs: false });
      count++;
    }
    return count / (CASE_MS / 1000);
  };
  const select1 = serialize.query('SELECT 1');
  const param = (i: number) =>
    Buffer.concat([
      serialize.parse({ text: 'SELECT $1::int' }),
      serialize.bind({ values: [String(i)] }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ]);
  results.set('select1', await loop(() => select1));
  results.set('param', await loop(param));
  const replies = {
    query: await engine.execProtocolRaw(select1, { syncToFs: false }),
    sync: await engine.execProtocolRaw(param(1), { syncToFs: false }),
  };
  await engine.exec('CREATE TABLE bench_rows (id int, label text)');
  const values = Array.from({ length: 10_000 }, (_, i) => `(${i}, 'row number ${i}')`).join(',');
  const insert = serialize.query(`INSERT INTO bench_rows VALUES ${values}`);
  let best = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < 3; attempt++) {
    await engine.exec('TRUNCATE bench_rows');
    const started = performance.now();
    await engine.execProtocolRaw(insert);
    best = Math.min(best, performance.now() - started);
  }
  results.set('insert10k', best);
  await runtime.close();
  return { results, replies };
}

interface Server {
  name: string;
  url: string;
  kinds: CaseName[];
  /** pgbench runs against the proxy and native PostgreSQL only. */
  pgbench?: boolean;
  stop(): Promise<void>;
}

/** The median of `ROUNDS` measurements: the servers take turns, so a noisy minute hits them all. */
async function measureInTurns(servers: Server[]): Promise<Map<string, Map<CaseName, number | string>>> {
  const samples = new Map(servers.map((server) => [server.name, new Map<CaseName, number[]>()]));
  const failures = new Map<string, Map<CaseName, string>>();
  // An untimed round first: V8 keeps optimizing the engine's code on the second core for a while
  // after the first queries, which would tax whichever server came first.
  for (const server of servers) await clientCase(server.url, 'select1').catch(() => {});
  for (const [kind] of CASES) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of servers) {
        if (!server.kinds.includes(kind) || failures.get(server.name)?.has(kind)) continue;
        try {
          const value = await clientCase(server.url, kind);
          const perKind = samples.get(server.name)!;
          perKind.set(kind, [...(perKind.get(kind) ?? []), value]);
        } catch (error) {
          const message = `error: ${(error as Error).message.slice(0, 40)}`;
          failures.set(server.name, (failures.get(server.name) ?? new Map()).set(kind, message));
        }
      }
    }
  }
  const columns = new Map<string, Map<CaseName, number | string>>();
  for (const server of servers) {
    const column = new Map<CaseName, number | string>(failures.get(server.name));
    for (const [kind, values] of samples.get(server.name)!) column.set(kind, median(values));
    columns.set(server.name, column);
  }
  return columns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function pgbenchTps(url: string): Promise<string> {
  try {
    await run('pgbench', ['-i', '-s', '1', '-q', url], { timeout: 120_000 });
    const { stdout } = await run('pgbench', ['-c', '8', '-j', '2', '-T', String(PGBENCH_SECONDS), url], {
      timeout: (PGBENCH_SECONDS + 60) * 1000,
    });
    const tps = /tps = ([\d.]+)/.exec(stdout)?.[1];
    const failed = /number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? '?';
    return `${Math.round(Number(tps))} tps, ${failed} failed`;
  } catch (error) {
    return `error: ${(error as Error).message.split('\n')[0]?.slice(0, 60)}`;
  }
}

function format(value: number | string | undefined, kind: CaseName): string {
  if (value === undefined) return '-';
  if (typeof value === 'string') return value;
  return kind === 'insert10k' ? `${value.toFixed(1)} ms` : `${Math.round(value).toLocaleString('en-US')}`;
}

async function main(): Promise<void> {
  console.log(
    `pglite-oxide proxy bench: ${os.cpus().length} CPUs, Node ${process.version}, median of ${ROUNDS} rounds of ${CASE_MS} ms per case after ${WARMUP_MS} ms warm-up, load average ${os.loadavg()[0]!.toFixed(1)}\n`,
  );
  const allCases = CASES.map(([kind]) => kind);
  const direct = await directColumn();
  const servers: Server[] = [];

  const floor = await startNodeFloor(direct.replies);
  servers.push({
    name: 'Node floor (canned)',
    url: floor.url,
    kinds: ['select1', 'param', 'pool8'],
    stop: floor.close,
  });

  const proxyRuntime = await newRuntime();
  const proxy = await startProxy({ runtime: proxyRuntime, port: 0 });
  servers.push({
    name: 'pglite-oxide proxy',
    url: proxy.connectionString,
    kinds: allCases,
    pgbench: true,
    stop: async () => {
      await proxy.close();
      await proxyRuntime.close();
    },
  });

  // As serve and run run it: the engine in a thread of its own, so a long statement holds no one else.
  const threadedRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-bench-'));
  const threadedPaths = await installAndInitIn(threadedRoot);
  const threadedEngine = await ThreadedEngine.start({
    kind: 'disk',
    runtimeRoot: threadedPaths.pgroot,
    pgdata: threadedPaths.pgdata,
  });
  const threadedProxy = await startThreadedProxy(threadedEngine, { port: 0 });
  servers.push({
    name: 'proxy, engine thread',
    url: threadedProxy.connectionString,
    kinds: allCases,
    pgbench: true,
    stop: () => threadedProxy.close(),
  });

  const socketRuntime = await newRuntime();
  const socketPort = await freePort();
  const socketServer = new PGLiteSocketServer({
    db: await socketRuntime.pglite(),
    port: socketPort,
    host: '127.0.0.1',
    maxConnections: 8,
  });
  await socketServer.start();
  servers.push({
    name: 'pglite-socket 0.1.6',
    url: `postgresql://postgres@127.0.0.1:${socketPort}/postgres`,
    kinds: allCases,
    stop: async () => {
      await socketServer.stop();
      await socketRuntime.close();
    },
  });

  const native = await startNativePostgres();
  if (native) {
    servers.push({
      name: 'native PostgreSQL 15',
      url: native.url,
      kinds: allCases,
      pgbench: true,
      stop: native.stop,
    });
  } else {
    console.log(`(no native PostgreSQL binaries in ${NATIVE_BIN}: column skipped)\n`);
  }

  const pgbench: Array<[string, string]> = [];
  let measured: Map<string, Map<CaseName, number | string>>;
  try {
    measured = await measureInTurns(servers);
    for (const server of servers) {
      if (server.pgbench) pgbench.push([server.name, await pgbenchTps(server.url)]);
    }
  } finally {
    for (const server of servers) await server.stop();
  }
  const columns: Array<[string, Map<CaseName, number | string>]> = [
    ['engine direct', direct.results],
    ...measured,
  ];

  const width = 38;
  const cell = 23;
  console.log(''.padEnd(width) + columns.map(([name]) => name.padStart(cell)).join(''));
  for (const [kind, label] of CASES) {
    console.log(
      label.padEnd(width) +
        columns.map(([, values]) => format(values.get(kind), kind).padStart(cell)).join(''),
    );
  }
  const ours = columns.find(([name]) => name === 'pglite-oxide proxy')?.[1].get('select1');
  const socket = columns.find(([name]) => name.startsWith('pglite-socket'))?.[1].get('select1');
  const nativeSelect = columns.find(([name]) => name.startsWith('native'))?.[1].get('select1');
  const floorSelect = columns.find(([name]) => name.startsWith('Node floor'))?.[1].get('select1');
  console.log('');
  if (typeof ours === 'number' && typeof floorSelect === 'number') {
    console.log(`proxy vs Node floor, SELECT 1:    ${(ours / floorSelect).toFixed(2)}x`);
  }
  const oursColumn = columns.find(([name]) => name === 'pglite-oxide proxy')?.[1];
  const same = oursColumn?.get('turns');
  const switching = oursColumn?.get('turnsSwitching');
  if (typeof same === 'number' && typeof switching === 'number') {
    console.log(
      `clients with their own settings taking turns: ${(switching / same).toFixed(2)}x (${(1e6 / switching - 1e6 / same).toFixed(1)} µs a switch)`,
    );
  }
  const threaded = columns.find(([name]) => name === 'proxy, engine thread')?.[1];
  for (const [kind, label] of [
    ['select1', 'SELECT 1'],
    ['param', 'SELECT $1'],
  ] as const) {
    const inline = columns.find(([name]) => name === 'pglite-oxide proxy')?.[1].get(kind);
    const hop = threaded?.get(kind);
    if (typeof inline === 'number' && typeof hop === 'number') {
      console.log(
        `engine thread vs same thread, ${label}: ${(hop / inline).toFixed(2)}x (${(1e6 / hop - 1e6 / inline).toFixed(1)} µs a round trip)`,
      );
    }
  }
  if (typeof ours === 'number' && typeof socket === 'number') {
    console.log(`proxy vs pglite-socket, SELECT 1: ${(ours / socket).toFixed(2)}x (goal >= 2.5x)`);
  }
  if (typeof ours === 'number' && typeof nativeSelect === 'number') {
    console.log(`proxy vs native, SELECT 1:        ${(ours / nativeSelect).toFixed(2)}x (goal >= 0.8x)`);
  }
  console.log(`\npgbench -c 8 -j 2 -T ${PGBENCH_SECONDS} (scale 1):`);
  for (const [name, result] of pgbench) console.log(`  ${name.padEnd(24)}${result}`);
}

await main();
