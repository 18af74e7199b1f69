import os from 'node:os';
import path from 'node:path';

/** The identity of an application, as the OS data directory conventions need it. */
export interface AppId {
  qualifier: string;
  organization: string;
  application: string;
}

/**
 * The per-application data directory, laid out as the OS expects it
 * (the same places as the `directories` crate's ProjectDirs, which the Rust crate uses):
 * Linux `$XDG_DATA_HOME/<application>`, macOS `~/Library/Application Support/<qualifier>.<organization>.<application>`,
 * Windows `%APPDATA%\<organization>\<application>\data`.
 */
export function projectDataDir(id: AppId, env: NodeJS.ProcessEnv = process.env): string {
  const home = os.homedir();
  switch (process.platform) {
    case 'darwin':
      return path.join(
        home,
        'Library',
        'Application Support',
        [id.qualifier, id.organization, id.application].map(dashed).join('.'),
      );
    case 'win32':
      return path.join(
        env.APPDATA ?? path.join(home, 'AppData', 'Roaming'),
        id.organization,
        id.application,
        'data',
      );
    default:
      return path.join(
        xdg(env.XDG_DATA_HOME) ?? path.join(home, '.local', 'share'),
        squashed(id.application),
      );
  }
}

/** Where this package keeps caches shared by every root (the initialized cluster, later templates). */
export function packageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGLITE_OXIDE_CACHE_DIR) return path.resolve(env.PGLITE_OXIDE_CACHE_DIR);
  const home = os.homedir();
  switch (process.platform) {
    case 'darwin':
      return path.join(home, 'Library', 'Caches', 'pglite-oxide');
    case 'win32':
      return path.join(env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'pglite-oxide', 'cache');
    default:
      return path.join(xdg(env.XDG_CACHE_HOME) ?? path.join(home, '.cache'), 'pglite-oxide');
  }
}

// XDG says relative paths in these variables are invalid and must be ignored.
function xdg(value: string | undefined): string | undefined {
  return value && path.isAbsolute(value) ? value : undefined;
}

function squashed(name: string): string {
  return name.trim().toLowerCase().replace(/\s+/g, '');
}

function dashed(name: string): string {
  return name.trim().replace(/\s+/g, '-');
}
