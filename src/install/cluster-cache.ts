import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InstallError } from '../errors.js';
import { engineInfo, pgliteDistDir } from './engine-assets.js';
import { looksLikeCluster, stagingName } from './fs-util.js';
import { withDirLock } from './lock.js';
import { type ProgressListener, withProgress } from './progress.js';
import { packageCacheDir } from './project-dirs.js';

/**
 * initdb arguments for the cached cluster. 1 MB WAL segments make the cluster 27 MB instead of
 * 38 MB, so every copy of it (one per root, later one per test suite) is cheaper.
 */
const INITDB_ARGS = ['--wal-segsize=1'];

export interface ClusterCacheOptions {
  cacheDir?: string;
  onProgress?: ProgressListener;
}

/** The cache key: one initialized cluster per engine version and initdb arguments. */
export function clusterCacheKey(): string {
  const { pgliteVersion, postgresVersion } = engineInfo();
  const args = createHash('sha256').update(INITDB_ARGS.join('\0')).digest('hex').slice(0, 8);
  return `pglite-${pgliteVersion}-pg${postgresVersion}-${args}`;
}

/**
 * Returns the directory of a pristine initialized cluster for this engine version, running
 * initdb (~5 s) only the first time on this machine. Callers copy it; they never write into it.
 */
export async function cachedCluster(options: ClusterCacheOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? packageCacheDir();
  const key = clusterCacheKey();
  const clusterDir = path.join(cacheDir, 'clusters', key);
  if (looksLikeCluster(clusterDir)) return clusterDir;

  await fs.mkdir(path.join(cacheDir, 'clusters'), { recursive: true });
  return withDirLock(cacheDir, path.join(cacheDir, `${key}.lock`), async () => {
    if (looksLikeCluster(clusterDir)) return clusterDir;
    // Something is there but it is not a cluster: a damaged cache. Rebuild it.
    if (existsSync(clusterDir)) await fs.rm(clusterDir, { recursive: true, force: true });
    await removeAbandonedStaging(path.join(cacheDir, 'clusters'));

    const staging = stagingName(clusterDir);
    const { postgresVersion } = engineInfo();
    try {
      await withProgress(
        `pglite-oxide: initializing the PostgreSQL ${postgresVersion} cluster (first run on this machine)`,
        options.onProgress,
        () => runInitdb(staging),
      );
      await fs.rename(staging, clusterDir);
    } catch (error) {
      await fs.rm(staging, { recursive: true, force: true });
      throw new InstallError(`initdb failed while building the cluster cache in ${cacheDir}`, {
        cause: error,
      });
    }
    return clusterDir;
  });
}

/** Staging directories left by a process killed mid-build; only called while holding the lock. */
async function removeAbandonedStaging(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir)) {
    if (entry.endsWith('.partial')) await fs.rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

// initdb keeps the CPU busy for seconds. In a worker thread the install lock stays fresh and the
// progress spinner keeps drawing. The worker is inline so it runs the same from source and from dist.
const INITDB_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.pgliteUrl)
  .then(({ PGlite }) => PGlite.create({ dataDir: workerData.dataDir, initDbStartParams: workerData.initdbArgs }))
  // A clean shutdown leaves a checkpointed cluster that opens without recovery.
  .then((db) => db.close())
  .then(() => parentPort.postMessage('done'));
`;

function runInitdb(dataDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const pgliteUrl = pathToFileURL(path.join(pgliteDistDir(), 'index.js')).href;
    const worker = new Worker(INITDB_WORKER, {
      eval: true,
      // Not the host's flags: --input-type=module would make this CommonJS script fail to load.
      execArgv: [],
      workerData: { dataDir, initdbArgs: INITDB_ARGS, pgliteUrl },
    });
    let done = false;
    worker.once('message', () => {
      done = true;
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (done && looksLikeCluster(dataDir)) resolve();
      else reject(new Error(`the initdb worker exited with code ${code} before finishing`));
    });
  });
}
