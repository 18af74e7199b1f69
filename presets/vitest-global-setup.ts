// Vitest globalSetup of pglite-oxide: in the main process, before any test file starts, builds
// (or reuses) the migrated template and starts the engine host that leases each file its database.
import type { TestProject } from 'vitest/node';
import { startTestRun } from '../src/testing/start-test-run.js';
import { handedOver } from './handoff.js';
import { OPTIONS_ID, type PgliteVitestOptions, PROVIDE_KEY } from './vitest-run.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const key = project.config.provide?.[OPTIONS_ID];
  const options = key ? handedOver<PgliteVitestOptions>(key) : undefined;
  const run = await startTestRun(
    options ?? {},
    { parallelFiles: project.config.maxWorkers },
    `pgliteOxide({ ... }) in the Vitest config${project.name ? ` of project "${project.name}"` : ''}`,
  );
  project.provide(PROVIDE_KEY, run.config);
  return () => run.close();
}
