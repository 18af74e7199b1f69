import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  ClusterCorruptedError,
  engineInfo,
  ensureCluster,
  InteractiveRuntime,
  installAndInitIn,
  installWithOptions,
  LockTimeoutError,
  PglitePaths,
  projectDataDir,
} from 'pglite-oxide';
import { describe, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { withDirLock } from '../src/install/lock.js';
import { exitOf, lineFrom, spawnPackageScript } from './helpers/child.js';
import { tempRoot } from './helpers/temp-root.js';

async function selectOne(paths: PglitePaths): Promise<string> {
  const runtime = await InteractiveRuntime.start(paths);
  try {
    const pg = await runtime.pglite();
    return String((await pg.query<{ v: string }>('SELECT 1 AS v')).rows[0]?.v);
  } finally {
    await runtime.close();
  }
}

function leftovers(paths: PglitePaths): string[] {
  const partial = (dir: string) =>
    existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.partial')) : [];
  return [...partial(paths.runtimeDir), ...partial(paths.tmpDir)];
}

describe('install', () => {
  it('lays out the runtime with a manifest of versions and checksums, then reuses it', async () => {
    const root = await tempRoot();
    const first = await install(PglitePaths.withRoot(root));
    expect(first).toMatchObject({ runtimeReused: false, clusterReused: false });
    const { paths } = first;
    expect(paths.pgdata).toBe(path.join(root, 'pglite', 'base'));
    const manifest = JSON.parse(readFileSync(paths.manifestPath, 'utf8'));
    expect(manifest.pgliteVersion).toBe('0.4.6');
    expect(manifest.postgresVersion).toBe('17.5');
    for (const [file, { sha256, size }] of Object.entries<{ sha256: string; size: number }>(manifest.files)) {
      const bytes = readFileSync(path.join(paths.runtimeDir, file));
      expect(bytes.length).toBe(size);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(sha256);
    }
    expect(Object.keys(manifest.files).sort()).toEqual([
      'bin/initdb.wasm',
      'bin/pg_dump.wasm',
      'bin/pglite.wasm',
      'share/pglite.data',
    ]);
    expect(readFileSync(path.join(paths.pgdata, 'PG_VERSION'), 'utf8').trim()).toBe('17');

    const second = await install(PglitePaths.withRoot(root));
    expect(second).toMatchObject({ runtimeReused: true, clusterReused: true });
    expect(await selectOne(paths)).toBe('1');
  });

  it('installs the runtime alone with ensureCluster: false, and the cluster later', async () => {
    const paths = await installWithOptions(PglitePaths.withRoot(await tempRoot()), { ensureCluster: false });
    expect(existsSync(path.join(paths.binDir, 'pglite.wasm'))).toBe(true);
    expect(existsSync(paths.pgdata)).toBe(false);
    await expect(InteractiveRuntime.start(paths)).rejects.toThrow(/no cluster/i);

    expect(await ensureCluster(paths)).toBe(false);
    expect(await ensureCluster(paths)).toBe(true);
    expect(await selectOne(paths)).toBe('1');
  });

  it('ends with one good install when two processes install into one root at once', async () => {
    const root = await tempRoot();
    const body = `await ox.installAndInitIn(${JSON.stringify(root)}); console.log('installed');`;
    const children = [spawnPackageScript(body), spawnPackageScript(body)];
    const codes = await Promise.all(children.map(exitOf));
    expect(codes, children.flatMap((c) => c.lines).join('\n')).toEqual([0, 0]);
    const paths = PglitePaths.withRoot(root);
    expect(leftovers(paths)).toEqual([]);
    expect(await selectOne(paths)).toBe('1');
  });

  it('takes over the lock of an installer that was killed while holding it', async () => {
    const dir = await tempRoot();
    const lockPath = path.join(dir, 'install.lock');
    const holder = spawnPackageScript(`
      const { withDirLock } = await import(${JSON.stringify(path.resolve('src/install/lock.ts'))});
      await withDirLock(${JSON.stringify(dir)}, ${JSON.stringify(lockPath)}, async () => {
        console.log('locked');
        setInterval(() => {}, 1_000); // busy until killed, as an installer would be
        await new Promise(() => {});
      });`);
    await lineFrom(holder, 'locked');
    // While the holder lives, its lock stands: a short wait ends with the typed error.
    await expect(withDirLock(dir, lockPath, async () => 'mine', 300)).rejects.toBeInstanceOf(
      LockTimeoutError,
    );
    holder.kill('SIGKILL');
    await exitOf(holder);
    // Its lock is no longer refreshed; once stale it is taken over, not waited on for minutes.
    expect(await withDirLock(dir, lockPath, async () => 'mine', 30_000)).toBe('mine');
  });

  it('redoes an install that a killed process left half-written', async () => {
    const root = await tempRoot();
    const paths = PglitePaths.withRoot(root);
    // Kill a real installer at a few points of its work.
    for (const delayMs of [20, 60]) {
      await fs.rm(root, { recursive: true, force: true });
      const child = spawnPackageScript(
        `console.log('starting'); await ox.installAndInitIn(${JSON.stringify(root)}); console.log('installed');`,
      );
      await lineFrom(child, 'starting');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      await exitOf(child);
      await installAndInitIn(root);
      expect(leftovers(paths)).toEqual([]);
      expect(await selectOne(paths)).toBe('1');
    }
  });

  it('redoes a runtime without a manifest and a cluster without PG_VERSION', async () => {
    const root = await tempRoot();
    const paths = await installAndInitIn(root);
    // What an interrupted install leaves: no manifest, a cut-off module, a partial restore.
    await fs.rm(paths.manifestPath);
    await fs.writeFile(path.join(paths.binDir, 'pglite.wasm'), 'cut off');
    await fs.rm(path.join(paths.pgdata, 'PG_VERSION'));
    await fs.mkdir(`${paths.pgdata}.123-abcd.partial`);

    const outcome = await install(paths);
    expect(outcome).toMatchObject({ runtimeReused: false, clusterReused: false });
    expect(readFileSync(path.join(paths.binDir, 'pglite.wasm')).length).toBeGreaterThan(1_000_000);
    expect(existsSync(`${paths.pgdata}.123-abcd.partial`)).toBe(false);
    expect(await selectOne(paths)).toBe('1');
  });

  it('refuses a corrupted cluster with the path and the way to recover, without hanging', async () => {
    const paths = await installAndInitIn(await tempRoot());
    await fs.writeFile(path.join(paths.pgdata, 'global', 'pg_control'), Buffer.alloc(8192, 7));
    const failure = InteractiveRuntime.start(paths);
    await expect(failure).rejects.toBeInstanceOf(ClusterCorruptedError);
    await expect(failure).rejects.toThrow(paths.pgdata);
    await expect(failure).rejects.toThrow(`remove ${paths.pgroot}`);
  });

  it('refuses a cluster made by another PostgreSQL major version', async () => {
    const paths = await installAndInitIn(await tempRoot());
    await fs.writeFile(path.join(paths.pgdata, 'PG_VERSION'), '16\n');
    await expect(ensureCluster(paths)).rejects.toThrow(/made by PostgreSQL 16/);
    await expect(InteractiveRuntime.start(paths)).rejects.toMatchObject({ code: 'CLUSTER_CORRUPTED' });
  });

  it('rebuilds a damaged cluster cache, from an ES-module entry point', async () => {
    const cacheDir = await tempRoot('pglite-oxide-cache-');
    const shared = path.join(process.env.PGLITE_OXIDE_CACHE_DIR!, 'clusters');
    const key = readdirSync(shared, { withFileTypes: true }).find(
      (entry) => entry.isDirectory() && !entry.name.endsWith('.partial'),
    )!.name;
    // A copy of the warm cache with its control file missing stands for a damaged one.
    await fs.cp(path.join(shared, key), path.join(cacheDir, 'clusters', key), { recursive: true });
    await fs.rm(path.join(cacheDir, 'clusters', key, 'global', 'pg_control'));
    const root = await tempRoot();
    // The child runs with --input-type=module: initdb's worker must not inherit that flag. (No
    // shipped cluster, so that initdb runs.)
    const child = spawnPackageScript(
      `await ox.installAndInitIn(${JSON.stringify(root)}, { assetsDir: null });`,
      {
        PGLITE_OXIDE_CACHE_DIR: cacheDir,
      },
    );
    expect(await exitOf(child), child.lines.join('\n')).toBe(0);
    expect(existsSync(path.join(cacheDir, 'clusters', key, 'global', 'pg_control'))).toBe(true);
    expect(await selectOne(PglitePaths.withRoot(root))).toBe('1');
  }, 120_000);

  it('puts the default root in the OS data directory of the app', () => {
    const app = { qualifier: 'com', organization: 'Example', application: 'My App' };
    if (process.platform === 'linux') {
      expect(projectDataDir(app, { XDG_DATA_HOME: '/data' })).toBe('/data/myapp');
      expect(projectDataDir(app, { XDG_DATA_HOME: 'relative' })).toMatch(/\.local\/share\/myapp$/);
    }
    expect(engineInfo()).toMatchObject({
      pgliteVersion: '0.4.6',
      pgliteToolsVersion: '0.3.6',
      postgresVersion: '17.5',
    });
  });
});
