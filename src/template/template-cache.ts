// Each distinct set of migrations, seed and settings gets a template of its own in the cache
// (~50 MB each), so a project that changes its migrations all afternoon would fill the disk. A
// template's directory is touched whenever a run takes it; those used least recently go first,
// beyond a number kept, and never one used in the last minutes (a run may be starting from it).
import fs from 'node:fs/promises';
import path from 'node:path';
import { looksLikeCluster } from '../install/fs-util.js';

/** Templates kept in the cache by default, the most recently used. */
export const DEFAULT_KEPT_TEMPLATES = 8;

/** A template used this recently is never pruned: another run may be starting from it. */
const IN_USE_MS = 10 * 60_000;

export interface CachedTemplate {
  key: string;
  path: string;
  /** When a run last took it. */
  lastUsed: Date;
}

/** The templates under `cacheDir`, the most recently used first. */
export async function listTemplates(cacheDir: string): Promise<CachedTemplate[]> {
  const root = path.join(cacheDir, 'templates');
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  const templates: CachedTemplate[] = [];
  for (const entry of entries) {
    const dir = path.join(root, entry.name);
    if (!entry.isDirectory() || !looksLikeCluster(dir)) continue;
    const { mtime } = await fs.stat(dir);
    templates.push({ key: entry.name, path: dir, lastUsed: mtime });
  }
  return templates.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
}

/** Marks the template at `pgdata` as used now. */
export async function touchTemplate(pgdata: string): Promise<void> {
  const now = new Date();
  await fs.utimes(pgdata, now, now).catch(() => {});
}

/**
 * Removes the templates beyond the `keep` most recently used, except those used in the last
 * minutes; `keep` 0 with `all` removes every one (`pglite-oxide cache clear`). Returns those removed.
 */
export async function pruneTemplates(
  cacheDir: string,
  { keep = DEFAULT_KEPT_TEMPLATES, all = false }: { keep?: number; all?: boolean } = {},
): Promise<CachedTemplate[]> {
  const templates = await listTemplates(cacheDir);
  const recent = Date.now() - IN_USE_MS;
  const removed = templates.slice(keep).filter((template) => all || template.lastUsed.getTime() < recent);
  for (const template of removed) await fs.rm(template.path, { recursive: true, force: true });
  return removed;
}

/** Bytes a directory's files take. */
export async function directorySize(dir: string): Promise<number> {
  let bytes = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) bytes += await directorySize(child);
    else if (entry.isFile()) bytes += (await fs.stat(child)).size;
  }
  return bytes;
}
