// Runs initdb for the cluster cache in a worker thread: initdb keeps the CPU busy for seconds,
// and off the main thread the install lock stays fresh and progress keeps drawing.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

interface InitdbJob {
  dataDir: string;
  initdbArgs: string[];
}

async function initdb({ dataDir, initdbArgs }: InitdbJob): Promise<void> {
  const db = await PGlite.create({ dataDir, initDbStartParams: initdbArgs });
  // A clean shutdown leaves a checkpointed cluster that opens without recovery.
  await db.close();
}

initdb(workerData as InitdbJob).then(() => parentPort?.postMessage('done'));
