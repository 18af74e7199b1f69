// pgTAP files as tests: each file runs on a database in the template's state, and its TAP
// output says which assertions passed.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import { readRows } from '../protocol/backend-rows.js';
import { parseTap, type TapResult } from './tap.js';

export interface TapFileResult {
  /** The file, relative to the directory the patterns were read from. */
  file: string;
  tap: TapResult;
  /** The error that stopped the file, with its detail and hint, or null when it ran to the end. */
  error: string | null;
}

/** What running a file needs of a test database. */
export interface TapDatabase {
  execInteractive(input: string): Promise<Uint8Array>;
  reset(): Promise<unknown>;
}

/**
 * The SQL files `patterns` name, sorted: a file, a directory (its `.sql` files), or a `*`
 * pattern in the file name (`tests/db/*.sql`, `tests/db/*_test.sql`). Relative to `cwd`.
 */
export function pgtapFiles(patterns: readonly string[], cwd = process.cwd()): string[] {
  const files = new Set<string>();
  for (const pattern of patterns) {
    const full = path.resolve(cwd, pattern);
    if (!pattern.includes('*')) {
      if (!existsSync(full)) throw new InvalidInputError(`pgtap(): ${pattern} does not exist.`);
      if (statSync(full).isDirectory()) for (const file of sqlFilesIn(full, /\.sql$/)) files.add(file);
      else files.add(full);
      continue;
    }
    const dir = path.dirname(full);
    if (path.dirname(pattern).includes('*') || !existsSync(dir)) {
      throw new InvalidInputError(
        `pgtap(): ${pattern} names no directory; a * may stand only in the file name (tests/db/*.sql).`,
      );
    }
    const name = path
      .basename(full)
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*');
    for (const file of sqlFilesIn(dir, new RegExp(`^${name}$`))) files.add(file);
  }
  if (files.size === 0) throw new InvalidInputError(`pgtap(): no SQL file matches ${patterns.join(', ')}.`);
  return [...files].sort();
}

function sqlFilesIn(dir: string, name: RegExp): string[] {
  return readdirSync(dir)
    .filter((entry) => name.test(entry) && statSync(path.join(dir, entry)).isFile())
    .map((entry) => path.join(dir, entry));
}

/**
 * Runs each file on `database`, every file from the template's state, and reads its TAP.
 * psql meta-commands (lines starting with a backslash, as pg_prove files have) are left out.
 */
export async function runTapFiles(
  database: TapDatabase,
  files: readonly string[],
  cwd = process.cwd(),
): Promise<TapFileResult[]> {
  const results: TapFileResult[] = [];
  for (const [index, file] of files.entries()) {
    if (index > 0) await database.reset();
    const sql = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('\\'))
      .join('\n');
    const output = await database.execInteractive(`CREATE EXTENSION IF NOT EXISTS pgtap;\n${sql}`);
    const { lines, error } = readOutput(output);
    results.push({ file: path.relative(cwd, file), tap: parseTap(lines), error });
  }
  return results;
}

/** The text of every row the engine sent, and its error if one stopped the file. */
function readOutput(output: Uint8Array): { lines: string[]; error: string | null } {
  const { rows, error } = readRows(output);
  const lines = rows.flat().filter((field): field is string => field !== null);
  if (!error) return { lines, error: null };
  const parts = [
    error.message,
    error.detail && `DETAIL: ${error.detail}`,
    error.hint && `HINT: ${error.hint}`,
  ];
  return { lines, error: parts.filter(Boolean).join('\n') };
}

/** One test a TAP file gives: an assertion, or a check of the file as a whole. */
export interface TapCheck {
  name: string;
  /** What the failure message says, or null when it passed. */
  failure: string | null;
  /** `# TODO`: its failure is expected. */
  todo: boolean;
  /** `# SKIP`: not run. */
  skip: boolean;
}

/** The tests a file's TAP gives: one per assertion, then the plan and whether it ran to the end. */
export function tapChecks(result: TapFileResult): TapCheck[] {
  const { tap, error } = result;
  const checks: TapCheck[] = tap.assertions.map((assertion) => ({
    name: `${assertion.number} - ${assertion.description || '(no description)'}`,
    failure: assertion.ok
      ? null
      : [`not ok ${assertion.number} - ${assertion.description}`, ...assertion.diagnostics].join('\n'),
    todo: assertion.directive === 'todo' && !assertion.ok,
    skip: assertion.directive === 'skip',
  }));
  if (error) {
    checks.push({ name: 'runs to the end', failure: `the file stopped: ${error}`, todo: false, skip: false });
  } else if (tap.planned === null) {
    checks.push({
      name: 'has a plan',
      failure: 'no plan: start the file with SELECT plan(n) and end it with SELECT * FROM finish()',
      todo: false,
      skip: false,
    });
  }
  if (tap.planned !== null && tap.planned !== tap.assertions.length) {
    checks.push({
      name: 'meets its plan',
      failure: `planned ${tap.planned} tests but ran ${tap.assertions.length}`,
      todo: false,
      skip: false,
    });
  }
  return checks;
}
