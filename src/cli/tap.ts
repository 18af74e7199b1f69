import fs from 'node:fs';
import path from 'node:path';
import { prepareTemplate } from '../template/prepare-template.js';
import { pgtapFiles, runTapFiles, type TapFileResult } from '../testing/pgtap-files.js';
import { startSuiteDatabase } from '../testing/suite-database.js';
import type { TemplateFlags } from './ephemeral.js';
import { fileCounts, junitReport, tapReport } from './tap-report.js';

export interface TestFlags extends TemplateFlags {
  /** Where to write a JUnit XML report too. */
  junit?: string;
}

/**
 * Runs pgTAP files as tests, each on a database in the migrated template's state, and prints
 * TAP 14 (a subtest per file); writes JUnit XML when asked. Fails (exit 1) when any file does.
 */
export async function testCommand(patterns: string[], flags: TestFlags): Promise<void> {
  const files = pgtapFiles(patterns);
  const template = await prepareTemplate({ migrations: flags.migrations, seed: flags.seed });
  const database = await startSuiteDatabase(template);
  let results: TapFileResult[];
  try {
    results = await runTapFiles(
      { execInteractive: (sql) => database.runtime.execInteractive(sql), reset: () => database.reset() },
      files,
    );
  } finally {
    await database.close();
  }
  console.log(tapReport(results));
  const { passed, failed } = fileCounts(results);
  console.log(`# files: ${passed} passed, ${failed} failed, ${files.length} in all`);
  if (flags.junit) {
    fs.mkdirSync(path.dirname(path.resolve(flags.junit)), { recursive: true });
    fs.writeFileSync(flags.junit, junitReport(results));
  }
  if (failed > 0) process.exitCode = 1;
}
