import { describe, expect, it } from 'vitest';
import { runCommand } from './helpers/child.js';
import { cleanEnv, installFixture, packPackage } from './helpers/fixture-project.js';
import { freshCacheDir } from './helpers/temp-root.js';

// The packed package, installed into a copy of fixtures/vitest-projects: one Vitest run of two
// projects, each with its own pgliteOxide() options (migrations, isolation).
describe('fixtures/vitest-projects with the packed package', () => {
  it("gives each Vitest project its own plugin's options", async () => {
    const project = await installFixture('vitest-projects', await packPackage());
    const run = await runCommand('npm', ['test'], {
      cwd: project,
      env: cleanEnv({ PGLITE_OXIDE_CACHE_DIR: await freshCacheDir() }),
      timeoutMs: 150_000,
    });
    expect(run.status, run.output).toBe(0);
    expect(run.stdout, run.output).toMatch(/Test Files\s+2 passed \(2\)/);
    expect(run.stdout, run.output).toMatch(/Tests\s+6 passed \(6\)/);
  }, 240_000);
});
