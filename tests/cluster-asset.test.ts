import { existsSync, readdirSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cachedCluster, InteractiveRuntime, installAndInitIn, type ProgressEvent } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { clusterAssetProblem, packageAssetsDir } from '../src/install/cluster-asset.js';
import { clusterCacheKey } from '../src/install/cluster-cache.js';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

/** Every file under `dir`, relative, sorted. */
function filesOf(dir: string, relative = ''): string[] {
  return readdirSync(path.join(dir, relative))
    .sort()
    .flatMap((name) => {
      const child = relative ? `${relative}/${name}` : name;
      return statSync(path.join(dir, child)).isDirectory() ? filesOf(dir, child) : [child];
    });
}

async function clusterWithTasks(options: { assetsDir?: string | null } = {}) {
  const tasks: string[] = [];
  const cacheDir = await tempRoot('pglite-oxide-empty-cache-');
  const dir = await cachedCluster({
    cacheDir,
    ...options,
    onProgress: (event: ProgressEvent) => {
      if (event.phase === 'start') tasks.push(event.task);
    },
  });
  return { dir, tasks };
}

// The package ships the pristine cluster of its pinned engine: a first run unpacks it instead of
// running initdb.
describe('the shipped cluster', () => {
  it('was made for the pinned engine (run npm run build:cluster-asset after changing it)', () => {
    expect(clusterAssetProblem(packageAssetsDir(), clusterCacheKey())).toBeNull();
  });

  it('is what a fresh cache unpacks; damaged, it is not used: initdb makes the same files, and the output says why', async () => {
    const unpacked = await clusterWithTasks();
    expect(unpacked.tasks).toEqual([expect.stringContaining('unpacking the PostgreSQL 17.5 cluster')]);

    const damaged = await tempRoot('pglite-oxide-assets-');
    await fs.cp(packageAssetsDir(), damaged, { recursive: true });
    const asset = path.join(damaged, 'cluster.tar.xz');
    const bytes = await fs.readFile(asset);
    bytes[bytes.length >> 1]! ^= 0xff;
    await fs.writeFile(asset, bytes);
    const made = await clusterWithTasks({ assetsDir: damaged });
    expect(made.tasks[0]).toContain('is damaged (checksum mismatch); running initdb instead');
    expect(made.tasks[1]).toContain('initializing the PostgreSQL 17.5 cluster');
    expect(filesOf(unpacked.dir)).toEqual(filesOf(made.dir));
  }, 60_000);

  it('is unpacked straight into the first root on a machine; the cache keeps its tar for the next', async () => {
    const cacheDir = await tempRoot('pglite-oxide-empty-cache-');
    const first = await installAndInitIn(await tempRoot('pglite-oxide-first-root-'), { cacheDir });
    expect(existsSync(path.join(cacheDir, 'clusters', `${clusterCacheKey()}.tar`))).toBe(true);
    expect(existsSync(path.join(cacheDir, 'clusters', clusterCacheKey()))).toBe(false);
    const second = await installAndInitIn(await tempRoot('pglite-oxide-second-root-'), { cacheDir });
    expect(filesOf(second.pgdata)).toEqual(filesOf(first.pgdata));
    const runtime = await InteractiveRuntime.start(second);
    try {
      expect(dataRows(await runtime.execInteractive('SELECT current_database()'))).toEqual([['postgres']]);
    } finally {
      await runtime.close();
    }
  });

  it('is not used when missing, or made for another engine', async () => {
    const empty = await tempRoot('pglite-oxide-no-assets-');
    expect(clusterAssetProblem(empty, clusterCacheKey())).toMatch(/^no shipped cluster in /);
    expect(clusterAssetProblem(packageAssetsDir(), 'pglite-9.9.9-pg99-00000000')).toBe(
      `the shipped cluster was made for ${clusterCacheKey()}, not pglite-9.9.9-pg99-00000000`,
    );
  });
});
