import fs from 'node:fs/promises';
import path from 'node:path';
import { packageCacheDir } from '../install/project-dirs.js';
import { directorySize, listTemplates, pruneTemplates } from '../template/template-cache.js';
import { defaultKeepDir } from '../testing/isolation.js';

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The databases kept for failing tests in this project, the newest first. */
async function keptDatabases(): Promise<string[]> {
  const dir = defaultKeepDir();
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(dir, entry.name))
    .sort()
    .reverse();
}

/** Lists the cached templates (size, last use) and the databases kept for failing tests here. */
export async function cacheListCommand(): Promise<void> {
  const cacheDir = packageCacheDir();
  const templates = await listTemplates(cacheDir);
  console.log(`cache: ${cacheDir} (set PGLITE_OXIDE_CACHE_DIR to move it)`);
  console.log(`templates: ${templates.length}, the most recently used first`);
  let total = 0;
  for (const template of templates) {
    const bytes = await directorySize(template.path);
    total += bytes;
    console.log(`  ${template.key}  ${megabytes(bytes)}  last used ${template.lastUsed.toISOString()}`);
  }
  console.log(`  in all ${megabytes(total)}`);
  const kept = await keptDatabases();
  console.log(`kept databases of failing tests: ${kept.length} (in ${defaultKeepDir()})`);
  for (const dir of kept)
    console.log(`  ${dir}  (reopen: npx pglite-oxide serve --data ${JSON.stringify(dir)})`);
}

/** Removes the templates beyond the most recently used `keep`. */
export async function cachePruneCommand(flags: { keep: number }): Promise<void> {
  const removed = await pruneTemplates(packageCacheDir(), { keep: flags.keep });
  for (const template of removed) console.log(`removed template ${template.key}`);
  console.log(
    `${removed.length} removed; templates used in the last 10 minutes are kept whatever --keep says`,
  );
}

/** Removes every cached template, and this project's kept databases. */
export async function cacheClearCommand(): Promise<void> {
  const removed = await pruneTemplates(packageCacheDir(), { keep: 0, all: true });
  const kept = await keptDatabases();
  for (const dir of kept) await fs.rm(dir, { recursive: true, force: true });
  console.log(`removed ${removed.length} templates and ${kept.length} kept databases`);
}
