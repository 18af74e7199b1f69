// Jest globalTeardown of pglite-oxide: stops the engine host the global setup started.
import { takeRun } from './jest-run.js';

export default async function globalTeardown(): Promise<void> {
  await takeRun()?.close();
}
