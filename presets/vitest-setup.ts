// Vitest globalSetup of pglite-oxide: builds (or reuses) the migrated template once per run, in
// the main process, before any test file starts, and hands it to the test files.
import type { TestProject } from 'vitest/node';
import { prepareTemplate } from '../src/template/prepare-template.js';
import { PROVIDE_KEY, takeRegisteredOptions } from './vitest-options.js';

export default async function setup(project: TestProject): Promise<void> {
  const { isolation = 'reset', ...templateOptions } = takeRegisteredOptions();
  const template = await prepareTemplate(templateOptions);
  project.provide(PROVIDE_KEY, { template, isolation });
}
