// The one place that reaches into @electric-sql/pglite-tools' private build output.
// Its public pgDump() always writes to a file and throws away pg_dump's stdout, so
// `pg_dump --version` and `--help` cannot be answered through it, and it always loads the
// pg_dump.wasm inside its own package. We load the same Emscripten glue, exported, so the
// runtime can run pg_dump with any arguments from the install's bin/pg_dump.wasm.
// tests/engine-internals.test.ts fails loudly if an upgrade moves any of this.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { EngineInternalsChangedError } from '../errors.js';
import { pgliteToolsDistDir } from '../install/engine-assets.js';

export interface PgDumpModule {
  callMain(args: string[]): number;
  FS: {
    readFile(path: string, options: { encoding: 'utf8' }): string;
    analyzePath(path: string): { exists: boolean };
  };
  ENV: Record<string, string>;
  HEAPU8: Uint8Array;
  HEAP8: Int8Array;
  addFunction(fn: (...args: number[]) => number, signature: string): number;
  _pgl_set_rw_cbs(read: number, write: number): void;
  onRuntimeInitialized?: () => void;
}

export interface PgDumpModuleOptions {
  noExitRuntime: boolean;
  locateFile: (file: string) => string;
  print: (text: string) => void;
  printErr: (text: string) => void;
  onExit: (code: number) => void;
  preRun: Array<(module: PgDumpModule) => void>;
}

export type PgDumpFactory = (options: PgDumpModuleOptions) => Promise<PgDumpModule>;

let factory: Promise<PgDumpFactory> | undefined;

export function loadPgDumpFactory(): Promise<PgDumpFactory> {
  factory ??= importFactory();
  return factory;
}

async function importFactory(): Promise<PgDumpFactory> {
  const distDir = pgliteToolsDistDir();
  const entry = readFileSync(path.join(distDir, 'pg_dump.js'), 'utf8');
  const chunk = /from\s*"\.\/(chunk-[\w-]+\.js)"/.exec(entry)?.[1];
  if (!chunk) throw new EngineInternalsChangedError('the pg_dump glue chunk referenced from pg_dump.js');
  const source = readFileSync(path.join(distDir, chunk), 'utf8');
  const name = /=await ([A-Za-z_$][\w$]*)\(\{noExitRuntime:/.exec(source)?.[1];
  if (!name) throw new EngineInternalsChangedError('the pg_dump Emscripten module factory');
  const exported = `${source}\nexport { ${name} as createPgDumpModule };\n`;
  const url = `data:text/javascript;base64,${Buffer.from(exported).toString('base64')}`;
  const module = (await import(/* @vite-ignore */ url)) as { createPgDumpModule?: PgDumpFactory };
  if (typeof module.createPgDumpModule !== 'function') {
    throw new EngineInternalsChangedError('a callable pg_dump Emscripten module factory');
  }
  return module.createPgDumpModule;
}

/** Where pg_dump writes its output inside its own filesystem (the path pglite-tools uses). */
export const PG_DUMP_OUTPUT = '/tmp/out.sql';
