import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClusterCorruptedError } from '../errors.js';
import { type ClusterCacheOptions, restoreCluster } from './cluster-cache.js';
import { engineInfo } from './engine-assets.js';
import { removeAbandonedStaging, stagingName } from './fs-util.js';
import { withDirLock } from './lock.js';
import { PglitePaths } from './paths.js';
import { type AppId, projectDataDir } from './project-dirs.js';
import { ensureRuntimeFiles } from './runtime-layout.js';

export interface InstallOptions extends ClusterCacheOptions {
  /** Also put an initialized cluster in `pgdata` (default true). */
  ensureCluster?: boolean;
}

export interface InstallOutcome {
  paths: PglitePaths;
  runtimeReused: boolean;
  /** Undefined when the cluster was not asked for. */
  clusterReused?: boolean;
}

/** Installs the runtime into the OS data directory of the given application, with a cluster. */
export async function installAndInit(app: AppId, options: Omit<InstallOptions, 'ensureCluster'> = {}) {
  return installAndInitIn(projectDataDir(app), options);
}

/** Installs the runtime and a cluster under an explicit root. */
export async function installAndInitIn(
  root: string,
  options: Omit<InstallOptions, 'ensureCluster'> = {},
): Promise<PglitePaths> {
  return installWithOptions(PglitePaths.withRoot(root), options);
}

export async function installWithOptions(
  paths: PglitePaths,
  options: InstallOptions = {},
): Promise<PglitePaths> {
  return (await install(paths, options)).paths;
}

/** Puts an initialized cluster in `paths.pgdata` unless one is there. Returns true when reused. */
export async function ensureCluster(paths: PglitePaths, options: ClusterCacheOptions = {}): Promise<boolean> {
  await fs.mkdir(paths.pgroot, { recursive: true });
  return withRootLock(paths, () => ensureClusterLocked(paths, options));
}

/** The install with everything it found, for callers that report reuse (MountInfo). */
export async function install(paths: PglitePaths, options: InstallOptions = {}): Promise<InstallOutcome> {
  await fs.mkdir(paths.pgroot, { recursive: true });
  return withRootLock(paths, async () => {
    if (options.ensureCluster === false) return { paths, runtimeReused: await ensureRuntimeFiles(paths) };
    // On a first run the engine files are copied (I/O on other threads) while the cluster is
    // unpacked (work on this one). Both finish before the lock is let go, whatever fails.
    const [runtime, cluster] = await Promise.allSettled([
      ensureRuntimeFiles(paths),
      ensureClusterLocked(paths, options),
    ]);
    if (runtime.status === 'rejected') throw runtime.reason;
    if (cluster.status === 'rejected') throw cluster.reason;
    return { paths, runtimeReused: runtime.value, clusterReused: cluster.value };
  });
}

function withRootLock<T>(paths: PglitePaths, fn: () => Promise<T>): Promise<T> {
  return withDirLock(paths.pgroot, path.join(paths.pgroot, '.pglite-oxide.lock'), fn);
}

async function ensureClusterLocked(paths: PglitePaths, options: ClusterCacheOptions): Promise<boolean> {
  if (existsSync(path.join(paths.pgdata, 'PG_VERSION'))) {
    assertUsableCluster(paths);
    return true;
  }
  // A data directory without PG_VERSION is an interrupted restore: clusters are renamed into
  // place only when complete, so whatever is there is not a cluster. Start it over.
  await fs.rm(paths.pgdata, { recursive: true, force: true });
  await removeAbandonedStaging(paths.pgdata);
  const staging = stagingName(paths.pgdata);
  try {
    await restoreCluster(staging, options);
    await fs.rename(staging, paths.pgdata);
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    throw error;
  }
  return false;
}

/** Refuses a data directory the engine cannot open, with the path and the way out. */
export function assertUsableCluster(paths: PglitePaths): void {
  const { postgresVersion } = engineInfo();
  const major = postgresVersion.split('.')[0];
  let version: string;
  try {
    version = readFileSync(path.join(paths.pgdata, 'PG_VERSION'), 'utf8').trim();
  } catch (error) {
    throw new ClusterCorruptedError(paths.pgdata, paths.pgroot, 'PG_VERSION cannot be read', {
      cause: error,
    });
  }
  if (version !== major) {
    throw new ClusterCorruptedError(
      paths.pgdata,
      paths.pgroot,
      `it was made by PostgreSQL ${version || '(empty PG_VERSION)'} and this engine is PostgreSQL ${postgresVersion}`,
    );
  }
  if (!existsSync(path.join(paths.pgdata, 'global', 'pg_control'))) {
    throw new ClusterCorruptedError(paths.pgdata, paths.pgroot, 'global/pg_control is missing');
  }
}
