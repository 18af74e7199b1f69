// What `pglite-oxide test` reports: TAP 14 on standard output (each pgTAP file a subtest, so a
// TAP consumer reads one plan of files and each file's own plan), and JUnit XML for CI systems.
import { type TapCheck, type TapFileResult, tapChecks } from '../testing/pgtap-files.js';

/** A file's checks, and whether the file failed (a failing check that is not a TODO). */
function fileChecks(result: TapFileResult): { checks: TapCheck[]; failed: boolean } {
  const checks = tapChecks(result);
  return { checks, failed: checks.some((check) => check.failure !== null && !check.todo) };
}

/** Why the check failed, without the TAP line an assertion's failure starts with (printed already). */
function failureLines(check: TapCheck): string[] {
  return (check.failure ?? '').split('\n').filter((line, i) => i > 0 || !line.startsWith('not ok '));
}

/** The check's description, without the assertion number its name starts with. */
function description(check: TapCheck): string {
  return check.name.replace(/^\d+ - /, '');
}

/** TAP 14: a plan of files, each file a subtest with its assertions and their diagnostics. */
export function tapReport(results: readonly TapFileResult[]): string {
  const lines = ['TAP version 14', `1..${results.length}`];
  for (const [index, result] of results.entries()) {
    const { checks, failed } = fileChecks(result);
    lines.push(`# Subtest: ${result.file}`, `    1..${checks.length}`);
    for (const [at, check] of checks.entries()) {
      const ok = check.failure === null || check.skip;
      const directive = check.skip ? ' # SKIP' : check.todo ? ' # TODO' : '';
      lines.push(`    ${ok ? 'ok' : 'not ok'} ${at + 1} - ${description(check)}${directive}`);
      if (!ok) {
        const message = failureLines(check).map((line) => `        ${line}`);
        lines.push('      ---', '      message: |', ...message, '      ...');
      }
    }
    lines.push(`${failed ? 'not ok' : 'ok'} ${index + 1} - ${result.file}`);
  }
  return lines.join('\n');
}

/** JUnit XML: a test suite per file, a test case per check. */
export function junitReport(results: readonly TapFileResult[]): string {
  const suites = results.map((result) => {
    const { checks } = fileChecks(result);
    const failures = checks.filter((check) => check.failure !== null && !check.todo && !check.skip).length;
    const skipped = checks.filter((check) => check.skip).length;
    const cases = checks.map((check) => {
      const name = `classname="${xml(result.file)}" name="${xml(check.name)}"`;
      if (check.skip || (check.todo && check.failure !== null))
        return `    <testcase ${name}><skipped/></testcase>`;
      if (check.failure === null) return `    <testcase ${name}/>`;
      const why = failureLines(check);
      return `    <testcase ${name}><failure message="${xml(why[0] ?? '')}">${xml(why.join('\n'))}</failure></testcase>`;
    });
    return [
      `  <testsuite name="${xml(result.file)}" tests="${checks.length}" failures="${failures}" skipped="${skipped}">`,
      ...cases,
      '  </testsuite>',
    ].join('\n');
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<testsuites name="pglite-oxide test">',
    ...suites,
    '</testsuites>',
    '',
  ].join('\n');
}

/** `text` as XML attribute or element text. */
function xml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** How many files passed and failed. */
export function fileCounts(results: readonly TapFileResult[]): { passed: number; failed: number } {
  const failed = results.filter((result) => fileChecks(result).failed).length;
  return { passed: results.length - failed, failed };
}
