// The pristine cluster of the pinned engine ships with the package (assets/cluster.tar.xz): the
// first run on a machine unpacks it (~0.3 s) instead of running initdb (~3 s, 800 MB of memory).
// `npm run build:cluster-asset` makes it from the engine itself.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser } from 'tar';
import * as xzModule from 'xz-decompress';

/** xz-decompress is CommonJS: an ES module sees its exports as `default`, a CommonJS build as they are. */
const { XzReadableStream } = ((xzModule as unknown as { default?: typeof xzModule }).default ??
  xzModule) as typeof xzModule;

/** What `assets/cluster.json` says of the asset beside it. */
export interface ClusterAssetInfo {
  /** The cluster cache key it was made for (engine version and initdb arguments). */
  key: string;
  /** SHA-256 of `cluster.tar.xz`. */
  sha256: string;
}

export const CLUSTER_ASSET_NAME = 'cluster.tar.xz';
export const CLUSTER_ASSET_INFO_NAME = 'cluster.json';

/** The package's `assets` directory: beside `src/` and `dist/`. */
export function packageAssetsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++) {
    const candidate = path.join(dir, 'assets');
    if (existsSync(path.join(candidate, CLUSTER_ASSET_INFO_NAME))) return candidate;
    dir = path.dirname(dir);
  }
  return path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'assets');
}

/** Why an asset cannot be used, or null when it can. */
export function clusterAssetProblem(assetsDir: string, key: string): string | null {
  const infoPath = path.join(assetsDir, CLUSTER_ASSET_INFO_NAME);
  const assetPath = path.join(assetsDir, CLUSTER_ASSET_NAME);
  if (!existsSync(infoPath) || !existsSync(assetPath)) return `no shipped cluster in ${assetsDir}`;
  let info: ClusterAssetInfo;
  try {
    info = JSON.parse(readFileSync(infoPath, 'utf8')) as ClusterAssetInfo;
  } catch {
    return `${infoPath} is not readable JSON`;
  }
  if (info.key !== key) return `the shipped cluster was made for ${info.key}, not ${key}`;
  const sha256 = createHash('sha256').update(readFileSync(assetPath)).digest('hex');
  if (sha256 !== info.sha256) return `the shipped cluster ${assetPath} is damaged (checksum mismatch)`;
  return null;
}

/** The shipped cluster as an uncompressed tar (check it with clusterAssetProblem first). */
export async function decodeClusterAsset(assetsDir: string): Promise<Buffer> {
  const compressed = new Blob([readFileSync(path.join(assetsDir, CLUSTER_ASSET_NAME))]).stream();
  return Buffer.from(await new Response(new XzReadableStream(compressed)).arrayBuffer());
}

/** Writes the files of a cluster tar into `into` (created; it should not exist yet). */
export function unpackClusterTar(tarball: Buffer, into: string): void {
  const dir = path.resolve(into);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // node-tar parses a buffer as it is written: the files are written as they come, synchronously.
  const parser = new Parser({
    onReadEntry: (entry) => {
      const target = path.resolve(dir, entry.path);
      if (target !== dir && !target.startsWith(dir + path.sep)) {
        throw new Error(`unsafe path in the cluster archive: ${entry.path}`);
      }
      if (entry.type === 'Directory') {
        mkdirSync(target, { recursive: true, mode: 0o700 });
        entry.resume();
        return;
      }
      if (entry.type !== 'File') {
        entry.resume();
        return;
      }
      const parts: Buffer[] = [];
      entry.on('data', (part: Buffer) => parts.push(part));
      entry.on('end', () => writeFileSync(target, Buffer.concat(parts), { mode: 0o600 }));
    },
  });
  parser.end(tarball);
}
