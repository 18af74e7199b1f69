import fs from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';

/** How each test is kept apart from the others in a file. */
export type Isolation = 'transaction' | 'reset' | 'none';

/** Whether a failing test's database is written to disk for inspection. */
export type KeepPolicy = 'never' | 'on-failure';

const ISOLATIONS: readonly Isolation[] = ['transaction', 'reset', 'none'];

export function checkIsolation(value: unknown): Isolation {
  if (value === undefined) return 'transaction';
  if (ISOLATIONS.includes(value as Isolation)) return value as Isolation;
  throw new InvalidInputError(
    `pglite-oxide: isolation must be one of ${ISOLATIONS.map((name) => `'${name}'`).join(', ')}, not ${JSON.stringify(value)}.`,
  );
}

/** The option, overridden by PGLITE_OXIDE_KEEP=on-failure|never for a one-off debugging run. */
export function keepPolicy(option: KeepPolicy | undefined, env: NodeJS.ProcessEnv = process.env): KeepPolicy {
  const value = env.PGLITE_OXIDE_KEEP || option || 'never';
  if (value === 'never' || value === 'on-failure') return value;
  throw new InvalidInputError(
    `pglite-oxide: PGLITE_OXIDE_KEEP must be 'on-failure' or 'never', not '${value}'.`,
  );
}

/** Where failing tests' databases are kept by default: under the project, beside its files. */
export function defaultKeepDir(cwd = process.cwd()): string {
  return path.join(cwd, '.pglite-oxide', 'kept');
}

/**
 * Makes `.pglite-oxide/` under the project for what the toolkit keeps there, telling git to
 * ignore it (as test tools' own cache folders do), so nothing kept is committed by mistake.
 */
export function makeProjectDir(keepDir: string): void {
  fs.mkdirSync(keepDir, { recursive: true, mode: 0o700 });
  const dir = path.dirname(keepDir);
  if (path.basename(dir) === '.pglite-oxide' && !fs.existsSync(path.join(dir, '.gitignore')))
    fs.writeFileSync(
      path.join(dir, '.gitignore'),
      '# Written by pglite-oxide: nothing here belongs in git.\n*\n',
    );
}
