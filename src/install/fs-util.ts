import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A unique sibling name for staging work that is renamed into place when complete. */
export function stagingName(base: string): string {
  return `${base}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
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
