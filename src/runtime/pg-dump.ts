import type { PGlite } from '@electric-sql/pglite';
import { serialize } from 'pg-protocol';
import { InvalidInputError, PgDumpError } from '../errors.js';
import { loadPgDumpFactory, PG_DUMP_OUTPUT } from './pg-dump-glue.js';

export interface PgDumpResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs pg_dump against the engine's own session. `argv[0]` is the program name, as in a shell.
 * Returns what pg_dump printed: the dump itself, or `--version`/`--help` text.
 */
export async function runPgDumpOn(
  pg: PGlite,
  wasmPath: string,
  argv: readonly string[],
  env: Record<string, string>,
): Promise<string> {
  const args = argv[0] === 'pg_dump' || argv[0]?.endsWith('/pg_dump') ? argv.slice(1) : [...argv];
  if (args.some((arg) => arg === '-f' || arg.startsWith('--file'))) {
    throw new InvalidInputError(
      'runPgDump returns the dump as text; leave out -f/--file and write it yourself.',
    );
  }
  const dumping = !args.some((arg) => /^(-V|--version|-\?|--help)$/.test(arg));
  const statusBefore = dumping ? await transactionStatus(pg) : 'I';
  const restore = dumping ? await sessionSettings(pg) : [];
  const result = await execute(pg, wasmPath, dumping ? [...args, '-f', PG_DUMP_OUTPUT] : args, env);
  if (dumping) {
    // pg_dump ends its snapshot transaction by disconnecting, which this shared session never does.
    if (statusBefore === 'I' && (await transactionStatus(pg)) !== 'I') await pg.exec('ROLLBACK');
    await restoreSession(pg, restore);
  }
  if (result.exitCode !== 0) {
    throw new PgDumpError(
      `pg_dump exited with code ${result.exitCode}: ${result.stderr.trim()}`,
      result.exitCode,
      result.stderr,
    );
  }
  return result.stdout;
}

async function execute(
  pg: PGlite,
  wasmPath: string,
  args: string[],
  env: Record<string, string>,
): Promise<PgDumpResult> {
  const createModule = await loadPgDumpFactory();
  let stdout = '';
  let stderr = '';
  let exitCode = 0;
  const module = await createModule({
    noExitRuntime: false,
    locateFile: (file) => (file.endsWith('.wasm') ? wasmPath : file),
    print: (text) => {
      stdout += `${text}\n`;
    },
    printErr: (text) => {
      stderr += `${text}\n`;
    },
    onExit: (code) => {
      exitCode = code;
    },
    preRun: [
      (mod) => {
        Object.assign(mod.ENV, { HOME: '/home/postgres', USER: 'postgres', LOGNAME: 'postgres' }, env);
        // pg_dump's libpq reads and writes through these callbacks; they carry its messages to
        // the engine's session synchronously, as the engine's own tools do.
        mod.onRuntimeInitialized = () => {
          let pending: Uint8Array = new Uint8Array(0);
          const write = mod.addFunction((pointer: number, length: number) => {
            const reply = pg.execProtocolRawSync(mod.HEAPU8.subarray(pointer, pointer + length));
            pending = concat(pending, reply);
            return length;
          }, 'iii');
          const read = mod.addFunction((pointer: number, max: number) => {
            const length = Math.min(pending.length, max);
            mod.HEAP8.set(pending.subarray(0, length), pointer);
            pending = pending.subarray(length);
            return length;
          }, 'iii');
          mod._pgl_set_rw_cbs(read, write);
        };
      },
    ],
  });
  try {
    module.callMain(args);
  } catch (error) {
    // Emscripten signals exit() by throwing; the code arrived through onExit.
    if (!(error && typeof error === 'object' && 'status' in error)) throw error;
  }
  if (exitCode === 0 && module.FS.analyzePath(PG_DUMP_OUTPUT).exists) {
    stdout += module.FS.readFile(PG_DUMP_OUTPUT, { encoding: 'utf8' });
  }
  return { exitCode, stdout, stderr };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The session's transaction status from a ReadyForQuery: I idle, T in a transaction, E failed one. */
async function transactionStatus(pg: PGlite): Promise<string> {
  const reply = await pg.execProtocolRaw(new Uint8Array(serialize.sync()));
  return String.fromCharCode(reply[reply.length - 1] ?? 0x49);
}

// pg_dump runs inside the engine's one session and SETs search_path, timeouts and more for
// itself, and prepares statements. Put the session back as the caller left it.
async function sessionSettings(pg: PGlite): Promise<Array<{ name: string; setting: string }>> {
  const result = await pg.query<{ name: string; setting: string }>(
    "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE source = 'session'",
  );
  return result.rows;
}

async function restoreSession(pg: PGlite, settings: Array<{ name: string; setting: string }>): Promise<void> {
  await pg.exec('DEALLOCATE ALL; RESET ALL');
  for (const { name, setting } of settings) {
    await pg.query('SELECT set_config($1, $2, false)', [name, setting]);
  }
}
