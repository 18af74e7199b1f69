import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const roots: string[] = [];

/** A fresh directory under the OS temp dir, removed when the file's tests end. */
export async function tempRoot(prefix = 'pglite-oxide-test-'): Promise<string> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  roots.push(root);
  return root;
}

afterAll(async () => {
  await Promise.all(roots.splice(0).map((root) => fs.rm(root, { recursive: true, force: true })));
});

/**
 * An empty package cache that shares the run's initialized cluster (so no initdb runs), for tests
 * that must see templates built from nothing.
 */
export async function freshCacheDir(): Promise<string> {
  const cacheDir = await tempRoot('pglite-oxide-cache-');
  await fs.symlink(
    path.join(process.env.PGLITE_OXIDE_CACHE_DIR!, 'clusters'),
    path.join(cacheDir, 'clusters'),
  );
  return cacheDir;
}
