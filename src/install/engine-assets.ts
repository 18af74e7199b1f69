import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** A file the runtime lays out under `<pgroot>/pglite`, and where it comes from in node_modules. */
export interface EngineAsset {
  /** Path relative to `<pgroot>/pglite`. */
  target: string;
  source: string;
  /** pg_dump is optional: an install may be made without it. */
  optional: boolean;
}

export interface EngineInfo {
  pgliteVersion: string;
  pgliteToolsVersion: string;
  postgresVersion: string;
}

const POSTGRES_VERSION_BY_PGLITE: Record<string, string> = { '0.4.6': '17.5' };

function packageDistDir(specifier: string): string {
  return path.dirname(require.resolve(specifier));
}

function packageVersion(distDir: string): string {
  const pkg = JSON.parse(readFileSync(path.join(distDir, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

let cachedInfo: EngineInfo | undefined;

export function engineInfo(): EngineInfo {
  if (!cachedInfo) {
    const pgliteVersion = packageVersion(pgliteDistDir());
    cachedInfo = {
      pgliteVersion,
      pgliteToolsVersion: packageVersion(pgliteToolsDistDir()),
      postgresVersion: POSTGRES_VERSION_BY_PGLITE[pgliteVersion] ?? 'unknown',
    };
  }
  return cachedInfo;
}

export function pgliteDistDir(): string {
  return packageDistDir('@electric-sql/pglite');
}

export function pgliteToolsDistDir(): string {
  return packageDistDir('@electric-sql/pglite-tools/pg_dump');
}

/** The engine files every install carries, by their place in the runtime layout. */
export function engineAssets(): EngineAsset[] {
  const pglite = pgliteDistDir();
  const tools = pgliteToolsDistDir();
  return [
    { target: 'bin/pglite.wasm', source: path.join(pglite, 'pglite.wasm'), optional: false },
    { target: 'bin/initdb.wasm', source: path.join(pglite, 'initdb.wasm'), optional: false },
    { target: 'share/pglite.data', source: path.join(pglite, 'pglite.data'), optional: false },
    { target: 'bin/pg_dump.wasm', source: path.join(tools, 'pg_dump.wasm'), optional: true },
  ];
}
