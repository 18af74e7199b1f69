// Jest globalTeardown of pglite-oxide: stops the engine host the global setup started.
import type { TestRun } from '../src/testing/start-test-run.js';
import { handedOver } from './handoff.js';
import { RUN_KEY } from './jest-run.js';

export default async function globalTeardown(): Promise<void> {
  await handedOver<TestRun>(RUN_KEY)?.close();
}
