import { existsSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cachedCluster } from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { loadClusterImage } from '../src/runtime/cluster-image.js';
import { tempRoot } from './helpers/temp-root.js';

async function copyOfCluster(): Promise<string> {
  const dir = path.join(await tempRoot('pglite-oxide-image-'), 'cluster');
  await fs.cp(await cachedCluster(), dir, { recursive: true });
  return dir;
}

describe('the packed image of a cluster', () => {
  it('is written on first read and read back byte for byte', async () => {
    const dir = await copyOfCluster();
    const first = await loadClusterImage(dir);
    expect(existsSync(`${dir}.image`)).toBe(true);
    const second = await loadClusterImage(dir);
    expect(second.files).toEqual(first.files);
    expect(second.dirs).toEqual(first.dirs);
    expect(Buffer.from(second.bytes).equals(Buffer.from(first.bytes))).toBe(true);
    expect(first.files.some((file) => file.path === 'PG_VERSION')).toBe(true);
  });

  it('is not trusted when damaged or when the cluster was rebuilt in its place', async () => {
    const dir = await copyOfCluster();
    const original = await loadClusterImage(dir);
    await fs.truncate(`${dir}.image`, 1000);
    expect((await loadClusterImage(dir)).files).toEqual(original.files);
    expect(statSync(`${dir}.image`).size).toBeGreaterThan(original.bytes.length);

    // A rebuilt cluster is a new directory: its image is made again, from it.
    await fs.rm(dir, { recursive: true });
    await fs.cp(await cachedCluster(), dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'rebuilt-marker'), 'x');
    const rebuilt = await loadClusterImage(dir);
    expect(rebuilt.files.some((file) => file.path === 'rebuilt-marker')).toBe(true);
  });
});
