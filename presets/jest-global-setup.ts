// Jest globalSetup of pglite-oxide: runs in Jest's main process, outside the test sandbox (where
// the engine cannot load), builds the migrated template and starts the engine host.
import type { Config } from '@jest/types';
import { startTestRun } from '../src/testing/start-test-run.js';
import { handOver } from './handoff.js';
import { optionsFromConfig, publishRun, RUN_KEY } from './jest-run.js';

export default async function globalSetup(
  globalConfig: Config.GlobalConfig,
  projectConfig: Config.ProjectConfig,
): Promise<void> {
  const options = optionsFromConfig(projectConfig.testEnvironmentOptions, projectConfig.rootDir);
  const run = await startTestRun(
    options,
    { parallelFiles: globalConfig.maxWorkers },
    'testEnvironmentOptions.pgliteOxide in jest.config',
  );
  publishRun(run.config, projectConfig.id);
  handOver(`${RUN_KEY}.${projectConfig.id}`, run);
}
