// Vitest globalSetup of pglite-oxide: in the main process, before any test file starts, builds
// (or reuses) the migrated template and starts the engine host that leases each file its database.
import type { TestProject } from 'vitest/node';
import { startTestRun } from '../src/testing/start-test-run.js';
import { PROVIDE_KEY, takeRegisteredOptions } from './vitest-options.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const run = await startTestRun(takeRegisteredOptions(), { parallelFiles: project.config.maxWorkers });
  project.provide(PROVIDE_KEY, run.config);
  return () => run.close();
}
