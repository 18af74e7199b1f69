import { copyFileSync } from 'node:fs';
import path from 'node:path';
import {
  closeDefaultRuntime,
  defaultMount,
  execInteractive,
  interactiveOne,
  poke,
  prepareDefaultMount,
  runPgDump,
  wasmImport,
} from 'pglite-oxide';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitOf, spawnPackageScript } from './helpers/child.js';
import { tempRoot } from './helpers/temp-root.js';
import { dataRows } from './helpers/wire.js';

let root: string;

beforeAll(async () => {
  root = await tempRoot();
  process.env.PGLITE_OXIDE_ROOT = root;
});
afterAll(async () => {
  await closeDefaultRuntime();
  delete process.env.PGLITE_OXIDE_ROOT;
});

describe('the default runtime behind the free functions', () => {
  it('prepares the mount under PGLITE_OXIDE_ROOT and reports it', async () => {
    const mount = await prepareDefaultMount();
    expect(mount.mountRoot).toBe(root);
    expect(mount.paths.pgdata).toBe(path.join(root, 'pglite', 'base'));
    expect(mount.socketPath.endsWith('.s.PGSQL.5432')).toBe(true);
    expect(mount.reused).toBe(false);
    expect(await defaultMount()).toBe(mount);
  });

  it('runs SQL, poke + interactiveOne and pg_dump', async () => {
    expect(dataRows(await execInteractive('SELECT 40 + 2'))).toEqual([['42']]);
    await poke('CREATE TABLE from_poke (id int)');
    expect((await interactiveOne()).length).toBeGreaterThan(0);
    expect(await runPgDump(['pg_dump', '--schema-only'])).toContain('CREATE TABLE public.from_poke');
  });

  it('hands out module paths, and runs an alternate module dropped into bin/', async () => {
    const { paths } = await defaultMount();
    expect(await wasmImport('postgres')).toBe(path.join(paths.binDir, 'pglite.wasm'));
    expect(await wasmImport('pg_dump')).toBe(path.join(paths.binDir, 'pg_dump.wasm'));
    await expect(wasmImport('nothing_here')).rejects.toThrow(/No WASM module for 'nothing_here'/);

    const alternate = path.join(paths.binDir, 'postgres-dev.wasm');
    copyFileSync(path.join(paths.binDir, 'pglite.wasm'), alternate);
    expect(await wasmImport('postgres-dev')).toBe(alternate);
    expect(await wasmImport('postgres', alternate)).toBe(alternate);
    // The runtime restarted on the alternate module, on the same data.
    expect(dataRows(await execInteractive('SELECT count(*) FROM from_poke'))).toEqual([['0']]);
  });

  it('is reused by the next process, which reports it', async () => {
    await closeDefaultRuntime();
    const child = spawnPackageScript(
      'const m = await ox.prepareDefaultMount(); console.log(JSON.stringify({ reused: m.reused })); await ox.closeDefaultRuntime();',
      { PGLITE_OXIDE_ROOT: root },
    );
    expect(await exitOf(child)).toBe(0);
    expect(child.lines).toContain('{"reused":true}');
  });
});
