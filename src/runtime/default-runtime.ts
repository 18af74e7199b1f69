import { existsSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import { install } from '../install/install.js';
import { PglitePaths } from '../install/paths.js';
import { projectDataDir } from '../install/project-dirs.js';
import { processWide } from '../process-wide.js';
import type { PokeInput } from '../protocol/frontend.js';
import { InteractiveRuntime, type RuntimeOptions } from './interactive-runtime.js';

/** Where the default runtime is mounted and what it found there. */
export interface MountInfo {
  paths: PglitePaths;
  mountRoot: string;
  /** Where a proxy for this mount listens by default (`psql -h <dir of it>`). */
  socketPath: string;
  /** True when both the runtime and the cluster were already installed. */
  reused: boolean;
}

/**
 * The default mount root: `PGLITE_OXIDE_ROOT` if set, otherwise the OS data directory of
 * pglite-oxide itself (`~/.local/share/pglite-oxide` on Linux).
 */
export function defaultMountRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGLITE_OXIDE_ROOT) return path.resolve(env.PGLITE_OXIDE_ROOT);
  return projectDataDir({ qualifier: 'dev', organization: 'pglite-oxide', application: 'pglite-oxide' }, env);
}

interface DefaultRuntimeState {
  mount?: Promise<MountInfo>;
  runtime?: Promise<InteractiveRuntime>;
  options: RuntimeOptions;
}

// One default runtime per process, even when the package is loaded by both import and require.
const state = processWide<DefaultRuntimeState>('default-runtime', () => ({ options: {} }));

/** Installs (or finds) the runtime and cluster under the default mount root. */
export function prepareDefaultMount(): Promise<MountInfo> {
  if (!state.mount) {
    const mount = (async () => {
      const root = defaultMountRoot();
      const outcome = await install(PglitePaths.withRoot(root));
      return {
        paths: outcome.paths,
        mountRoot: root,
        socketPath: path.join(outcome.paths.runtimeDir, 'run', '.s.PGSQL.5432'),
        reused: outcome.runtimeReused && outcome.clusterReused === true,
      };
    })();
    state.mount = mount;
    mount.catch(() => {
      if (state.mount === mount) state.mount = undefined;
    });
  }
  return state.mount;
}

/** The MountInfo of the default runtime (prepared on first use). */
export function defaultMount(): Promise<MountInfo> {
  return prepareDefaultMount();
}

/** The process-wide runtime behind the free functions, started on first use. */
export function defaultRuntime(): Promise<InteractiveRuntime> {
  if (!state.runtime) {
    const runtime = (async () =>
      InteractiveRuntime.start((await prepareDefaultMount()).paths, state.options))();
    state.runtime = runtime;
    runtime.catch(() => {
      if (state.runtime === runtime) state.runtime = undefined;
    });
  }
  return state.runtime;
}

/**
 * Sets the environment and settings the default runtime starts with (see standardEnv).
 * Only takes effect before the runtime starts, or after closeDefaultRuntime().
 */
export function configureDefaultRuntime(options: RuntimeOptions): void {
  state.options = { ...options };
}

/** Closes the default runtime so the process can exit; the next free-function call reopens it. */
export async function closeDefaultRuntime(): Promise<void> {
  const current = state.runtime;
  state.runtime = undefined;
  if (current) await (await current.catch(() => undefined))?.close();
}

const MODULE_FILES: Record<string, string> = {
  postgres: 'pglite.wasm',
  pglite: 'pglite.wasm',
  initdb: 'initdb.wasm',
  pg_dump: 'pg_dump.wasm',
};

/**
 * The path of a WASM module of the default install: `postgres`, `initdb`, `pg_dump`, or any
 * `<alias>.wasm` dropped into `<pgroot>/pglite/bin`. With `modulePath`, that file is checked and
 * for `postgres` becomes the module the default runtime starts with.
 */
export async function wasmImport(alias: string, modulePath?: string): Promise<string> {
  const { paths } = await prepareDefaultMount();
  const file = modulePath
    ? path.resolve(modulePath)
    : path.join(paths.binDir, MODULE_FILES[alias] ?? `${alias}.wasm`);
  if (!existsSync(file)) throw new InvalidInputError(`No WASM module for '${alias}' at ${file}.`);
  if (modulePath && MODULE_FILES[alias] === 'pglite.wasm') {
    await closeDefaultRuntime();
    state.options = { ...state.options, wasmPath: file };
  }
  return file;
}

/** Runs SQL or raw frontend messages on the default runtime; returns the raw backend bytes. */
export async function execInteractive(input: PokeInput): Promise<Uint8Array> {
  return (await defaultRuntime()).execInteractive(input);
}

/** Queues input on the default runtime for the next interactiveOne(). */
export async function poke(input: PokeInput): Promise<void> {
  (await defaultRuntime()).poke(input);
}

/** Runs what was poked as one unit on the default runtime and returns its output. */
export async function interactiveOne(): Promise<Uint8Array> {
  return (await defaultRuntime()).interactiveOne();
}

/** pg_dump on the default runtime: its output, or null when the install has no pg_dump. */
export async function runPgDump(
  argv: readonly string[],
  env: Record<string, string> = {},
): Promise<string | null> {
  return (await defaultRuntime()).runPgDump(argv, env);
}
