import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const DIST_INDEX = path.resolve('dist/index.js');

export function requireBuild(): void {
  if (!existsSync(DIST_INDEX)) {
    console.error('Build the package first: npm run build');
    process.exit(1);
  }
}

export interface ChildFigures {
  /** Milliseconds from the child's process start to its first query answered. */
  firstQueryMs: number;
  /** Peak resident set size of the child, MB. */
  peakRssMb: number;
}

/**
 * Runs an ESM snippet in a fresh Node process. The snippet ends by calling `report()`, which
 * prints the time since the process started and its peak RSS.
 */
export function inFreshProcess(snippet: string, env: NodeJS.ProcessEnv = {}): ChildFigures {
  const script = `
    const report = () => console.log(JSON.stringify({
      firstQueryMs: performance.now(),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    }));
    ${snippet}`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  const last = out.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as ChildFigures;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Prints rows as an aligned table. */
export function printTable(header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  for (const [index, row] of cells.entries()) {
    console.log(
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    );
    if (index === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

export function machine(): string {
  const cpus = execFileSync('nproc', { encoding: 'utf8' }).trim();
  return `node ${process.version}, ${cpus} cores, ${process.platform}`;
}
