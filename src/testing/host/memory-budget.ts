import os from 'node:os';
import { InvalidInputError } from '../../errors.js';

/**
 * What one more database adds to the engine host's resident memory: `npm run bench:memory`
 * measures ~117 MB (its engine's heap and snapshot, the files its tests wrote, its thread), with
 * headroom for tests that write more.
 */
export const DATABASE_MEMORY_MB = 128;

/** Half of the memory the process may use: the machine's, or its container's when lower. */
export function defaultMemoryBudgetMb(): number {
  const total = os.totalmem();
  const constrained = process.constrainedMemory?.() ?? 0;
  const available = constrained > 0 ? Math.min(total, constrained) : total;
  return Math.floor(available / 2 / 2 ** 20);
}

/** The budget asked for, checked, or the default. */
export function memoryBudgetMbOf(asked: number | undefined): number {
  if (asked === undefined) return defaultMemoryBudgetMb();
  if (typeof asked !== 'number' || !(asked > 0) || !Number.isFinite(asked)) {
    throw new InvalidInputError(
      `pglite-oxide: memoryBudgetMb must be a positive number of megabytes, got ${String(asked)}.`,
    );
  }
  return asked;
}

/** How many databases fit in `budgetMb`: at least one, so a run always makes progress. */
export function databasesWithin(budgetMb: number): number {
  return Math.max(1, Math.floor(budgetMb / DATABASE_MEMORY_MB));
}

/** Said once per run, when a test file waits for a database because memory is full. */
export function memoryQueueWarning(alive: number, budgetMb: number): string {
  return (
    `pglite-oxide: a test file waits for a database: ${alive} database(s) of ~${DATABASE_MEMORY_MB} MB ` +
    `each fill the memory budget of ${budgetMb} MB. Files run as databases are released; raise ` +
    "`memoryBudgetMb` to run more at once, or lower the runner's parallel files to wait less."
  );
}
