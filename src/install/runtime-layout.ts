import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type EngineInfo, engineAssets, engineInfo } from './engine-assets.js';
import { removeAbandonedStaging, writeFileAtomic } from './fs-util.js';
import type { PglitePaths } from './paths.js';

/** `<pgroot>/pglite/manifest.json`: what was installed. Written last, so it marks a complete install. */
export interface RuntimeManifest extends EngineInfo {
  installedAt: string;
  files: Record<string, { size: number; sha256: string }>;
}

export async function readManifest(paths: PglitePaths): Promise<RuntimeManifest | undefined> {
  try {
    return JSON.parse(await fs.readFile(paths.manifestPath, 'utf8')) as RuntimeManifest;
  } catch {
    return undefined;
  }
}

/**
 * Lays out the engine files under `<pgroot>/pglite` (bin/, share/, tmp/) unless a complete install
 * of this engine version is already there. Returns true when the existing install was reused.
 * Files are not re-hashed on reuse: a module dropped in by hand is the user's choice.
 */
export async function ensureRuntimeFiles(paths: PglitePaths): Promise<boolean> {
  const info = engineInfo();
  const manifest = await readManifest(paths);
  const assets = engineAssets();
  if (
    manifest?.pgliteVersion === info.pgliteVersion &&
    assets.every((asset) => asset.optional || existsSync(path.join(paths.runtimeDir, asset.target)))
  ) {
    return true;
  }

  // No manifest: nothing here or a half-written install. Lay everything out again. (The caller
  // holds the root's lock: a manifest still being written belongs to a process that died.)
  await fs.rm(paths.manifestPath, { force: true });
  await removeAbandonedStaging(paths.manifestPath);
  await fs.rm(paths.tmpDir, { recursive: true, force: true });
  await fs.mkdir(paths.tmpDir, { recursive: true, mode: 0o700 });
  const files: RuntimeManifest['files'] = {};
  for (const asset of assets) {
    if (asset.optional && !existsSync(asset.source)) continue;
    const target = path.join(paths.runtimeDir, asset.target);
    const staging = path.join(paths.tmpDir, asset.target.replaceAll('/', '_'));
    await fs.copyFile(asset.source, staging);
    const { size } = await fs.stat(staging);
    files[asset.target] = { size, sha256: await sha256File(staging) };
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.rename(staging, target);
  }
  const complete: RuntimeManifest = { ...info, installedAt: new Date().toISOString(), files };
  await writeFileAtomic(paths.manifestPath, `${JSON.stringify(complete, null, 2)}\n`);
  return false;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
