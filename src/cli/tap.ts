import { prepareTemplate } from '../template/prepare-template.js';
import { pgtapFiles, runTapFiles, tapChecks } from '../testing/pgtap-files.js';
import { startSuiteDatabase } from '../testing/suite-database.js';
import type { TemplateFlags } from './ephemeral.js';

/**
 * Runs pgTAP files as tests, each on a database in the migrated template's state, and prints
 * TAP: a line per assertion, the diagnostics of failures, a summary. Fails (exit 1) when any does.
 */
export async function testCommand(patterns: string[], flags: TemplateFlags): Promise<void> {
  const files = pgtapFiles(patterns);
  const template = await prepareTemplate({ migrations: flags.migrations, seed: flags.seed });
  const database = await startSuiteDatabase(template);
  let failed = 0;
  let passed = 0;
  try {
    const results = await runTapFiles(
      { execInteractive: (sql) => database.runtime.execInteractive(sql), reset: () => database.reset() },
      files,
    );
    for (const result of results) {
      const checks = tapChecks(result);
      const fileFailed = checks.some((check) => check.failure && !check.todo);
      console.log(`# ${result.file}`);
      for (const check of checks) {
        if (check.skip) console.log(`ok - ${check.name} # SKIP`);
        else if (!check.failure || check.todo)
          console.log(`ok - ${check.name}${check.todo ? ' # TODO' : ''}`);
        else {
          console.log(`not ok - ${check.name}`);
          const lines = check.failure.split('\n');
          // An assertion's failure starts with its own TAP line, already printed.
          if (lines[0]?.startsWith('not ok ')) lines.shift();
          for (const line of lines) console.log(`#   ${line}`);
        }
      }
      if (fileFailed) failed++;
      else passed++;
    }
  } finally {
    await database.close();
  }
  console.log(`# files: ${passed} passed, ${failed} failed, ${files.length} in all`);
  if (failed > 0) process.exitCode = 1;
}
