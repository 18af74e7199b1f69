// One engine opens one database. The proxy serves each other database a client asks for from an
// engine of its own, on a copy of the cluster in which that database exists.
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { serialize } from 'pg-protocol';
import { PglitePaths } from '../../install/paths.js';
import type { EngineSettings } from '../../runtime/engine.js';
import { InteractiveRuntime } from '../../runtime/interactive-runtime.js';
import { ThreadedEngine } from '../../runtime/threaded-engine.js';
import { type EngineGate, RuntimeGate } from './engine-gate.js';
import type { EngineFiles, ServedEngine } from './served-database.js';

/** Runs `work` while the main engine is held: no client's unit runs meanwhile. */
export type HoldMain = <T>(work: (gate: EngineGate) => Promise<T>) => Promise<T>;

/** Starts the engines of databases other than the main one, and cleans up after them. */
export interface DatabaseOpener {
  /**
   * Starts an engine that serves database `name`, which the cluster lists, counting oids in
   * `oidRange` (see runtime/oid-range.ts).
   */
  open(name: string, holdMain: HoldMain, oidRange: number): Promise<ServedEngine>;
  /** Makes the cluster database `name` is served from: `write` fills the new directory given. */
  create(name: string, write: (to: string) => Promise<void>): Promise<void>;
  /** `name` was dropped and its engine closed: what it kept on disk goes too. */
  dropped(name: string): Promise<void>;
  /** `from` was renamed `to` and its engine closed: its copy moves to the new name. */
  renamed(from: string, to: string): Promise<void>;
  /** The proxy closed: copies made for this run only are removed. */
  close(): Promise<void>;
}

/** The cluster the main engine runs on or started from, and how its engines run. */
export interface MainCluster {
  runtimeRoot: string;
  pgdata: string;
  env: Record<string, string>;
  settings: EngineSettings;
  /**
   * `memory`: the main engine started in memory from `pgdata`, which it never writes (a template).
   * `disk`: it runs on `pgdata`; copies of it are kept beside it, in `databases/`.
   */
  kind: 'memory' | 'disk';
  /** Engines run in threads of their own (`serve`, `run`) or in this thread. */
  threaded: boolean;
}

export function databaseOpener(main: MainCluster): DatabaseOpener {
  let scratch: string | null = null;
  const copiesDir = async (): Promise<string> => {
    if (main.kind === 'disk') return path.join(path.dirname(main.pgdata), 'databases');
    scratch ??= await fs.mkdtemp(path.join(os.tmpdir(), 'pglite-oxide-databases-'));
    return scratch;
  };
  return {
    async open(name, holdMain, oidRange) {
      const env = { ...main.env, PGDATABASE: name };
      const dir = await databaseDir(await copiesDir(), name);
      // A database CREATE DATABASE made has its directory already (see create). Those of an
      // initdb cluster are in the template; one made on the main engine by an earlier version
      // is in the main engine's cluster.
      if (!existsSync(path.join(dir, 'PG_VERSION'))) {
        if (main.kind === 'memory') {
          // The template never changes: no need to hold the engine.
          await copyCluster(copyDirectory(main.pgdata), dir);
        } else {
          await holdMain(async (gate) => {
            await gate.exec(serialize.query('CHECKPOINT'));
            await copyCluster(copyDirectory(main.pgdata), dir);
          });
        }
      }
      // Opening a database the copy does not have creates it (from the copy's template1): so a
      // database made by CREATE DATABASE on an in-memory engine starts as PostgreSQL made it.
      return startEngine(main, dir, env, oidRange);
    },
    async create(name, write) {
      const dir = await databaseDir(await copiesDir(), name);
      // What a database of that name dropped earlier left.
      await removeInside(path.dirname(dir), path.basename(dir));
      await copyCluster(write, dir);
    },
    async dropped(name) {
      await removeInside(await copiesDir(), databaseDirName(name));
    },
    async renamed(from, to) {
      const root = await copiesDir();
      // What a database of the new name dropped earlier left.
      await removeInside(root, databaseDirName(to));
      await fs.rename(path.join(root, databaseDirName(from)), path.join(root, databaseDirName(to)));
    },
    async close() {
      if (scratch) await fs.rm(scratch, { recursive: true, force: true });
    },
  };
}

/**
 * The directory name of database `name`'s copy: a database name is a client's text and must never
 * become a path (".." or "a/../b"), so every byte but lower-case letters, digits and "_" is
 * written as "-xx" (hex). Distinct names get distinct directories, also on file systems that do
 * not tell upper from lower case; 63 bytes make at most 189 characters.
 */
export function databaseDirName(name: string): string {
  let encoded = 'db_';
  for (const byte of Buffer.from(name, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += /[a-z0-9_]/.test(char) ? char : `-${byte.toString(16).padStart(2, '0')}`;
  }
  return encoded;
}

/**
 * Where database `name`'s copy lives under `root`. A copy kept under the name earlier versions
 * gave it (the name URI-encoded) is moved there, unless that name was no safe directory name.
 */
async function databaseDir(root: string, name: string): Promise<string> {
  const dir = path.join(root, databaseDirName(name));
  const legacy = encodeURIComponent(name);
  if (
    legacy !== '.' &&
    legacy !== '..' &&
    !existsSync(dir) &&
    existsSync(path.join(root, legacy, 'PG_VERSION'))
  ) {
    await fs.rename(path.join(root, legacy), dir);
  }
  return dir;
}

/** Removes `root`/`entry`, after checking that it resolves to a directory inside `root`. */
async function removeInside(root: string, entry: string): Promise<void> {
  const target = path.resolve(root, entry);
  const realRoot = await fs.realpath(root).catch(() => null);
  if (realRoot === null) return;
  const realTarget = await fs.realpath(target).catch(() => null);
  if (realTarget === null) return;
  if (path.dirname(realTarget) !== realRoot) {
    throw new Error(`refusing to remove ${target}: it does not lie inside ${realRoot}`);
  }
  await fs.rm(realTarget, { recursive: true, force: true });
}

/** A cluster written into `to` by `write`, whole or not at all. */
async function copyCluster(write: (to: string) => Promise<void>, to: string): Promise<void> {
  const partial = `${to}.copying-${process.pid}`;
  await fs.rm(partial, { recursive: true, force: true });
  await fs.mkdir(path.dirname(to), { recursive: true });
  try {
    await write(partial);
  } catch (error) {
    await fs.rm(partial, { recursive: true, force: true });
    throw error;
  }
  await fs.rename(partial, to);
}

/** Writes a copy of the cluster in `from`, the files `keep` accepts only (paths relative to it). */
export function copyDirectory(from: string, keep: (relative: string) => boolean = () => true) {
  return (to: string) =>
    fs.cp(from, to, { recursive: true, filter: (source) => keep(path.relative(from, source)) });
}

/** An engine on the cluster in `pgdata`, counting oids in `oidRange`. */
async function startEngine(
  main: MainCluster,
  pgdata: string,
  env: Record<string, string>,
  oidRange: number,
): Promise<ServedEngine> {
  const { runtimeRoot, settings } = main;
  if (main.threaded) {
    const engine = await ThreadedEngine.start({ kind: 'disk', runtimeRoot, pgdata, env, settings, oidRange });
    return {
      gate: engine,
      env: engine.env,
      close: () => engine.close(),
      threaded: engine,
      files: diskFiles(pgdata),
    };
  }
  const runtime = await InteractiveRuntime.start(new PglitePaths(runtimeRoot, pgdata), {
    env,
    settings,
    oidRange,
  });
  return {
    gate: new RuntimeGate(runtime),
    env: runtime.env,
    close: () => runtime.close(),
    files: diskFiles(pgdata),
  };
}

/** How an engine on the cluster in `pgdata` has its files copied. */
export function diskFiles(pgdata: string): EngineFiles {
  return { copy: (to, keep) => copyDirectory(pgdata, keep)(to), local: pgdata };
}
