import { Worker } from 'node:worker_threads';

// Worker entries are files of their own: in the built package they sit in dist/ next to the
// module that starts them; from source (this package's own tests) they are .ts files, which the
// worker loads through tsx.

/** The URL of entry `name` (e.g. 'engine-thread') beside the module at `moduleUrl`. */
export function entryBeside(moduleUrl: string, name: string): string {
  return new URL(moduleUrl.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, moduleUrl).href;
}

// A small inline loader, so that a worker from source can register tsx before its entry loads.
const WORKER_LOADER = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.entry.endsWith('.ts')) (await import('tsx/esm/api')).register();
  await import(workerData.entry);
})().catch((error) => { process.nextTick(() => { throw error; }); });
`;

/**
 * Starts the worker entry at `entry` with `data` as its workerData (plus `entry`); `transfer`:
 * what in `data` moves to the worker (message ports).
 */
export function startWorker(
  entry: string,
  data: object,
  name: string,
  transfer: Transferable[] = [],
): Worker {
  return new Worker(WORKER_LOADER, {
    eval: true,
    workerData: { ...data, entry },
    transferList: transfer as never,
    // Never the parent's flags (e.g. --input-type from an eval'd script).
    execArgv: [],
    name,
  });
}
