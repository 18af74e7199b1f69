import os from 'node:os';
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

export function defaultKeepDir(): string {
  return path.join(os.tmpdir(), 'pglite-oxide-kept');
}
