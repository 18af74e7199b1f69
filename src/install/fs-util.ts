import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A unique sibling name for staging work that is renamed into place when complete. */
export function stagingName(base: string): string {
  return `${base}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
}

/** Removes what stagingName() made for `base` and no one renamed into place (its writer died). */
export async function removeAbandonedStaging(base: string): Promise<void> {
  const dir = path.dirname(base);
  const prefix = `${path.basename(base)}.`;
  for (const entry of await fs.readdir(dir).catch(() => [])) {
    if (entry.startsWith(prefix) && entry.endsWith('.partial')) {
      await fs.rm(path.join(dir, entry), { recursive: true, force: true });
    }
  }
}

/** Writes a file so readers see either the old content or the new, never half of it. */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const staging = stagingName(file);
  await fs.writeFile(staging, content);
  await fs.rename(staging, file);
}

/** True when `dir` holds a PostgreSQL cluster with its version marker and control file. */
export function looksLikeCluster(dir: string): boolean {
  return existsSync(path.join(dir, 'PG_VERSION')) && existsSync(path.join(dir, 'global', 'pg_control'));
}
