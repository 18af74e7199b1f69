// Two ways SQL could reach JavaScript inside the engine and throw there: reading the /dev/blob
// device with no blob attached, and COPY ... PROGRAM (popen), which PGlite answers by throwing.
// A JavaScript exception unwinds the engine's C stack without PostgreSQL's error recovery, and the
// session is corrupt from then on. These guards turn both into an errno, so PostgreSQL reports
// an ordinary ERROR to that client (58030 I/O error, 42501 could not execute command) and the
// session goes on, whatever SQL path reached them. Private engine parts: tests/engine-internals.
import type { PGlite } from '@electric-sql/pglite';
import { EngineInternalsChangedError } from '../errors.js';

interface ErrnoFS {
  makedev(major: number, minor: number): number;
  getDevice(device: number): { stream_ops: Record<string, unknown> } | undefined;
  ErrnoError: new (errno: number) => Error;
}

interface GuardedModule {
  FS: ErrnoFS;
  HEAP32: Int32Array;
  addFunction(fn: (command: number, mode: number) => number, signature: string): number;
  UTF8ToString(pointer: number): string;
  ___errno_location(): number;
  _pgl_set_popen_fn(fn: number): void;
}

/** Emscripten's errno numbers. */
const EIO = 29;
const EPERM = 63;
/** PGlite registers /dev/blob as this character device. */
const BLOB_DEVICE: [number, number] = [64, 0];
const guarded = new WeakSet<object>();

export function guardEngine(engine: PGlite): void {
  const module = engineModule(engine);
  if (guarded.has(module)) return;
  guarded.add(module);
  const { FS } = module;
  const device = FS.getDevice(FS.makedev(...BLOB_DEVICE));
  if (!device) throw new EngineInternalsChangedError('the /dev/blob device (64:0)');
  for (const name of ['read', 'write', 'llseek']) {
    const operation = device.stream_ops[name];
    if (typeof operation !== 'function') throw new EngineInternalsChangedError(`/dev/blob ${name}`);
    device.stream_ops[name] = function (this: unknown, ...args: unknown[]) {
      try {
        return operation.apply(this, args);
      } catch (error) {
        if ((error as { name?: string })?.name === 'ErrnoError') throw error;
        throw new FS.ErrnoError(EIO);
      }
    };
  }
  const handleExternal = (engine as unknown as { handleExternalCmd?: (cmd: string, mode: string) => number })
    .handleExternalCmd;
  const popen = module.addFunction((command, mode) => {
    try {
      // PGlite serves `locale -a` itself; everything else has no program to run.
      if (!handleExternal) throw new Error('no external commands');
      return handleExternal.call(engine, module.UTF8ToString(command), module.UTF8ToString(mode));
    } catch {
      module.HEAP32[module.___errno_location() >> 2] = EPERM;
      return 0;
    }
  }, 'ppp');
  module._pgl_set_popen_fn(popen);
}

function engineModule(engine: PGlite): GuardedModule {
  const module = (engine as unknown as { mod?: Partial<GuardedModule> }).mod;
  const missing = [
    'FS',
    'HEAP32',
    'addFunction',
    'UTF8ToString',
    '___errno_location',
    '_pgl_set_popen_fn',
  ].filter((name) => module?.[name as keyof GuardedModule] === undefined);
  if (!module || missing.length > 0) {
    throw new EngineInternalsChangedError(`the engine module's ${missing.join(', ') || 'mod'}`);
  }
  return module as GuardedModule;
}
