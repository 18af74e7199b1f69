// Options arrive as plain objects from config files, where TypeScript often does not look: a
// misspelled name would be ignored and the run go on with a default (an empty database, another
// isolation). Each name is checked, and a wrong one named with the closest right one.
import { InvalidInputError } from './errors.js';

/** Throws naming the first key of `options` that is not one of `known`, with the closest that is. */
export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const closest = closestName(name, known);
    throw new InvalidInputError(
      `pglite-oxide: unknown option "${name}" in ${where}` +
        (closest ? `; did you mean "${closest}"?` : `. Known options: ${known.join(', ')}.`),
    );
  }
}

/** The name of `candidates` nearest to `name` in edits, when near enough to be a slip; else null. */
export function closestName(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : null;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length]!;
}
