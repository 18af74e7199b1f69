// A runner loads a preset's parts as separate bundles in one process (Vitest: the config and the
// global setup; Jest: the global setup and teardown), so module state does not reach from one to
// the other. What one part leaves for the next is kept process-wide.
import { processWide } from '../src/process-wide.js';

const left = processWide('preset-handoff', () => new Map<string, unknown>());

/** Leaves `value` for a later part of the preset, under `key`. */
export function handOver<T>(key: string, value: T): void {
  left.set(key, value);
}

/** What an earlier part of the preset left under `key`, if it ran. */
export function handedOver<T>(key: string): T | undefined {
  return left.get(key) as T | undefined;
}
