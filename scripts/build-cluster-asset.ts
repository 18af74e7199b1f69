// Makes assets/cluster.tar.xz, the pristine cluster the package ships, from the pinned engine
// itself: initdb with the cache's arguments, then a tar of the cluster (sorted, no owners or
// times) compressed with xz. Run it after changing the pinned engine: a test fails until then.
// Usage: npm run build:cluster-asset   (needs the xz command)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import {
  CLUSTER_ASSET_INFO_NAME,
  CLUSTER_ASSET_NAME,
  type ClusterAssetInfo,
} from '../src/install/cluster-asset.js';
import { clusterCacheKey, runInitdb } from '../src/install/cluster-cache.js';

/** Every path under `dir`, relative, sorted: the same order on every machine. */
function listTree(dir: string, relative = ''): string[] {
  const entries = readdirSync(path.join(dir, relative)).sort();
  return entries.flatMap((name) => {
    const child = relative ? `${relative}/${name}` : name;
    return statSync(path.join(dir, child)).isDirectory() ? [child, ...listTree(dir, child)] : [child];
  });
}

const assetsDir = path.resolve('assets');
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-cluster-asset-'));
try {
  const cluster = path.join(work, 'cluster');
  console.log('initdb ...');
  await runInitdb(cluster);
  const tarball = path.join(work, 'cluster.tar');
  await tar.c(
    { cwd: cluster, file: tarball, portable: true, mtime: new Date(0), noDirRecurse: true },
    listTree(cluster),
  );
  console.log('xz ...');
  const compressed = execFileSync('xz', ['-9', '-e', '-T1', '-c', tarball], { maxBuffer: 64 * 1024 * 1024 });
  await fs.mkdir(assetsDir, { recursive: true });
  await fs.writeFile(path.join(assetsDir, CLUSTER_ASSET_NAME), compressed);
  const info: ClusterAssetInfo = {
    key: clusterCacheKey(),
    sha256: createHash('sha256').update(compressed).digest('hex'),
  };
  await fs.writeFile(path.join(assetsDir, CLUSTER_ASSET_INFO_NAME), `${JSON.stringify(info, null, 2)}\n`);
  console.log(
    `${path.join('assets', CLUSTER_ASSET_NAME)}: ${compressed.length} bytes for ${(await fs.stat(tarball)).size} bytes of cluster (${info.key})`,
  );
} finally {
  await fs.rm(work, { recursive: true, force: true });
}
