import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, installFixture, packPackage } from './helpers/fixture-project.js';
import { freshCacheDir } from './helpers/temp-root.js';

// The packed package, installed into a copy of fixtures/vitest-app, running that project's own
// test command with its files in parallel: what a user's CI does.
describe('fixtures/vitest-app with the packed package', () => {
  it('passes its own suite in the forks and threads pools, and rebuilds the template when a migration changes', async () => {
    const project = await installFixture('vitest-app', await packPackage());
    const cacheDir = await freshCacheDir();
    const runSuite = (...args: string[]) =>
      spawnSync('npm', ['test', ...(args.length > 0 ? ['--', ...args] : [])], {
        cwd: project,
        encoding: 'utf8',
        env: cleanEnv({ PGLITE_OXIDE_CACHE_DIR: cacheDir }),
        timeout: 240_000,
      });

    const first = runSuite();
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Test Files\s+5 passed \(5\)/);
    expect(first.stdout).toMatch(/Tests\s+13 passed \| 1 expected fail \(14\)/);
    const templates = () => readdirSync(path.join(cacheDir, 'templates')).filter((e) => !e.endsWith('.lock'));
    expect(templates()).toHaveLength(1);

    // The same suite in Vitest's worker-threads pool, reusing the cached template.
    const threads = runSuite('--pool=threads');
    expect(threads.status, threads.stdout + threads.stderr).toBe(0);
    expect(threads.stdout).toMatch(/Tests\s+13 passed \| 1 expected fail \(14\)/);
    expect(templates()).toHaveLength(1);

    await fs.appendFile(
      path.join(project, 'migrations', '010_orders.sql'),
      '\nALTER TABLE orders ADD COLUMN note text;\n',
    );
    const second = runSuite();
    expect(second.status, second.stdout + second.stderr).toBe(0);
    expect(templates()).toHaveLength(2);
  }, 600_000);
});
