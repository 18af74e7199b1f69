// Jest globalTeardown of pglite-oxide: stops the engine host the global setup of this project started.
import type { Config } from '@jest/types';
import type { TestRun } from '../src/testing/start-test-run.js';
import { handedOver } from './handoff.js';
import { RUN_KEY } from './jest-run.js';

export default async function globalTeardown(
  _globalConfig: Config.GlobalConfig,
  projectConfig: Config.ProjectConfig,
): Promise<void> {
  await handedOver<TestRun>(`${RUN_KEY}.${projectConfig.id}`)?.close();
}
