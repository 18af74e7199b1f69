// Vitest globalSetup of pglite-oxide: in the main process, before any test file starts, builds
// (or reuses) the migrated template and starts the engine host that leases each file its database.
import type { TestProject } from 'vitest/node';
import { startTestRun } from '../src/testing/start-test-run.js';
import { handedOver } from './handoff.js';
import { OPTIONS_KEY, type PgliteVitestOptions, PROVIDE_KEY } from './vitest-run.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const run = await startTestRun(handedOver<PgliteVitestOptions>(OPTIONS_KEY) ?? {}, {
    parallelFiles: project.config.maxWorkers,
  });
  project.provide(PROVIDE_KEY, run.config);
  return () => run.close();
}
