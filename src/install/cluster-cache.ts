import { createHash } from 'node:crypto';
import { cpSync, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InstallError } from '../errors.js';
import {
  clusterAssetProblem,
  decodeClusterAsset,
  packageAssetsDir,
  unpackClusterTar,
} from './cluster-asset.js';
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
  const { cacheDir, key, clusterDir } = cachePlaces(options);
  if (looksLikeCluster(clusterDir)) return clusterDir;
  return withCacheLock(cacheDir, key, async () => {
    if (looksLikeCluster(clusterDir)) return clusterDir;
    // Something is there but it is not a cluster: a damaged cache. Rebuild it.
    if (existsSync(clusterDir)) await fs.rm(clusterDir, { recursive: true, force: true });
    await removeAbandonedStaging(path.join(cacheDir, 'clusters'));
    const staging = stagingName(clusterDir);
    const tarball = await clusterTarball(cacheDir, key, options);
    if (tarball && (await unpacked(tarball, staging))) {
      await fs.rename(staging, clusterDir);
      return clusterDir;
    }
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

/**
 * Puts a pristine cluster at `into` (which must not exist): a copy of the cached one, or, while
 * there is none, the files of the cached tar written straight into it. So a first run on a
 * machine writes the cluster's ~1,000 files once (into the new root), not twice.
 */
export async function restoreCluster(into: string, options: ClusterCacheOptions = {}): Promise<void> {
  const { cacheDir, key, clusterDir } = cachePlaces(options);
  if (!looksLikeCluster(clusterDir)) {
    const tarball = await withCacheLock(cacheDir, key, () => clusterTarball(cacheDir, key, options));
    if (tarball && (await unpacked(tarball, into))) return;
  }
  // A synchronous recursive copy measured fastest of copy, tar and tar.gz (bench/cluster-restore.ts):
  // ~1000 small files, where async I/O pays a thread-pool round trip for each step of each file.
  cpSync(await cachedCluster(options), into, { recursive: true });
}

function cachePlaces(options: ClusterCacheOptions): { cacheDir: string; key: string; clusterDir: string } {
  const cacheDir = options.cacheDir ?? packageCacheDir();
  const key = clusterCacheKey();
  return { cacheDir, key, clusterDir: path.join(cacheDir, 'clusters', key) };
}

async function withCacheLock<T>(cacheDir: string, key: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(path.join(cacheDir, 'clusters'), { recursive: true });
  return withDirLock(cacheDir, path.join(cacheDir, `${key}.lock`), fn);
}

/**
 * The pristine cluster as an uncompressed tar: kept in the cache as `clusters/<key>.tar` (one file,
 * written once), made from the shipped cluster the first time. Null when there is no usable
 * shipped cluster (the progress output says why). Only called while holding the cache lock.
 */
async function clusterTarball(
  cacheDir: string,
  key: string,
  options: ClusterCacheOptions,
): Promise<Buffer | null> {
  const file = path.join(cacheDir, 'clusters', `${key}.tar`);
  if (existsSync(file)) return fs.readFile(file);
  const assetsDir = options.assetsDir === undefined ? packageAssetsDir() : options.assetsDir;
  if (assetsDir === null) return null;
  const problem = clusterAssetProblem(assetsDir, key);
  if (problem) {
    // Said, not thrown: initdb makes the same cluster, only slower.
    await withProgress(
      `pglite-oxide: ${problem}; running initdb instead`,
      options.onProgress,
      async () => {},
    );
    return null;
  }
  const tarball = await withProgress(
    `pglite-oxide: unpacking the PostgreSQL ${engineInfo().postgresVersion} cluster (first run on this machine)`,
    options.onProgress,
    () => decodeClusterAsset(assetsDir),
  );
  const staging = stagingName(file);
  await fs.writeFile(staging, tarball);
  await fs.rename(staging, file);
  return tarball;
}

/** Writes a cluster tar into `into`; false (and nothing left there) when it is not a whole cluster. */
async function unpacked(tarball: Buffer, into: string): Promise<boolean> {
  try {
    unpackClusterTar(tarball, into);
    if (looksLikeCluster(into)) return true;
  } catch {
    // A damaged tar: the caller falls back to initdb.
  }
  await fs.rm(into, { recursive: true, force: true });
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
