/**
 * Serves the default engine on a PostgreSQL socket until Ctrl+C.
 *
 *   npm run proxy -- --tcp [--port 5433]   TCP on 127.0.0.1 (a free port unless --port)
 *   npm run proxy -- --uds [--port 5432]   a Unix socket in the default mount's run directory
 */
import path from 'node:path';
import { closeDefaultRuntime, defaultMount, startProxy } from '../src/index.js';

const args = process.argv.slice(2);
const uds = args.includes('--uds');
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : undefined;

const mount = await defaultMount();
const proxy = await startProxy(
  uds
    ? { tcp: false, socketDir: path.dirname(mount.socketPath), port: port ?? 5432 }
    : { tcp: true, port: port ?? 0 },
);

console.log(`pglite-oxide proxy serving ${mount.paths.pgdata}`);
console.log(`  URI:  ${proxy.connectionString}`);
console.log(
  uds
    ? `  psql: psql -h ${proxy.socketDir} -p ${proxy.port} -U ${proxy.user} ${proxy.database}`
    : `  psql: psql "${proxy.connectionString}"`,
);
console.log('Press Ctrl+C to stop.');

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: closing ${proxy.clientCount} client(s) and the engine...`);
  await proxy.close();
  await closeDefaultRuntime();
  console.log('stopped');
}
process.once('SIGINT', () => void stop('SIGINT'));
process.once('SIGTERM', () => void stop('SIGTERM'));
