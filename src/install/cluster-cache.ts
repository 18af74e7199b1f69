import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InstallError } from '../errors.js';
import { clusterAssetProblem, packageAssetsDir, unpackClusterAsset } from './cluster-asset.js';
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
  /** Where the shipped cluster is looked for (default: the package's `assets`); null: run initdb. */
  assetsDir?: string | null;
}

/** The cache key: one initialized cluster per engine version and initdb arguments. */
export function clusterCacheKey(): string {
  const { pgliteVersion, postgresVersion } = engineInfo();
  const args = createHash('sha256').update(INITDB_ARGS.join('\0')).digest('hex').slice(0, 8);
  return `pglite-${pgliteVersion}-pg${postgresVersion}-${args}`;
}

/**
 * Returns the directory of a pristine initialized cluster for this engine version. The first time
 * on a machine it is unpacked from the cluster the package ships (verified against this engine's
 * key and its checksum), or made by initdb (~3 s) when that is missing or damaged. Callers copy
 * it; they never write into it.
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
    if (await unpackShippedCluster(staging, key, options)) {
      await fs.rename(staging, clusterDir);
      return clusterDir;
    }
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

/** Unpacks the shipped cluster into `staging`; false (and nothing left) when it cannot be used. */
async function unpackShippedCluster(
  staging: string,
  key: string,
  options: ClusterCacheOptions,
): Promise<boolean> {
  const assetsDir = options.assetsDir === undefined ? packageAssetsDir() : options.assetsDir;
  if (assetsDir === null) return false;
  const problem = clusterAssetProblem(assetsDir, key);
  const task = problem
    ? `pglite-oxide: ${problem}; running initdb instead`
    : `pglite-oxide: unpacking the PostgreSQL ${engineInfo().postgresVersion} cluster (first run on this machine)`;
  if (problem) {
    // Said, not thrown: initdb makes the same cluster, only slower.
    await withProgress(task, options.onProgress, async () => {});
    return false;
  }
  try {
    await withProgress(task, options.onProgress, () => unpackClusterAsset(assetsDir, staging));
    if (looksLikeCluster(staging)) return true;
  } catch {
    // A damaged archive: initdb makes the cluster instead.
  }
  await fs.rm(staging, { recursive: true, force: true });
  return false;
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

/** Runs initdb in a worker thread, making a pristine cluster in `dataDir`. */
export function runInitdb(dataDir: string): Promise<void> {
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
