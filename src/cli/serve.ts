import { readFile } from 'node:fs/promises';
import { InvalidInputError } from '../errors.js';
import { installAndInitIn } from '../install/install.js';
import { startThreadedProxy, type ThreadedProxyHandle } from '../proxy/server.js';
import { ThreadedEngine } from '../runtime/threaded-engine.js';
import {
  clientTimeouts,
  startEphemeralDatabase,
  type TemplateFlags,
  type TimeoutFlags,
} from './ephemeral.js';
import { onShutdown } from './shutdown.js';

interface ServeFlags extends TemplateFlags, TimeoutFlags {
  data?: string;
  host: string;
  port: number;
  socketDir?: string;
  password?: string;
  passwordFile?: string;
}

/** The password from --password-file, PGLITE_OXIDE_PASSWORD or --password (in that order). */
async function servedPassword(flags: ServeFlags): Promise<string | undefined> {
  if (flags.passwordFile) {
    const text = await readFile(flags.passwordFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new InvalidInputError(`Cannot read the password file ${flags.passwordFile}: ${error.message}`);
    });
    const password = text.replace(/\r?\n$/, '');
    if (!password) throw new InvalidInputError(`The password file ${flags.passwordFile} is empty.`);
    return password;
  }
  return process.env.PGLITE_OXIDE_PASSWORD || flags.password;
}

/** The connection string with its password masked, for printing. */
function withoutPassword(connectionString: string, password: string | undefined): string {
  if (!password) return connectionString;
  return connectionString.replace(`:${encodeURIComponent(password)}@`, ':***@');
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const password = await servedPassword(flags);
  const listen = {
    tcp: flags.socketDir === undefined,
    host: flags.host,
    // A Unix socket is named after a port too: libpq looks for .s.PGSQL.5432 unless told.
    port: flags.socketDir !== undefined && flags.port === 0 ? 5432 : flags.port,
    socketDir: flags.socketDir,
    password,
    ...clientTimeouts(flags),
    onWarning: (message: string) => console.error(`pglite-oxide: ${message}`),
  };
  let proxy: ThreadedProxyHandle;
  let closeEngine: () => Promise<void>;
  if (flags.data) {
    if (flags.migrations || flags.seed) {
      throw new InvalidInputError(
        '--migrations and --seed make a fresh database; leave them out with --data.',
      );
    }
    const paths = await installAndInitIn(flags.data);
    const engine = await ThreadedEngine.start({
      kind: 'disk',
      runtimeRoot: paths.pgroot,
      pgdata: paths.pgdata,
    });
    proxy = await startThreadedProxy(engine, listen).catch(async (error) => {
      await engine.close();
      throw error;
    });
    closeEngine = () => engine.close();
  } else {
    const database = await startEphemeralDatabase(flags, listen);
    proxy = database.proxy;
    closeEngine = () => database.close();
  }
  // The password is never printed: stdout may be a CI log.
  const printable = withoutPassword(proxy.connectionString, password);
  console.log(printable);
  console.error(`pglite-oxide: serving ${flags.data ?? 'a throwaway database'}; try: psql "${printable}"`);
  if (printable !== proxy.connectionString) {
    console.error('pglite-oxide: the password (shown as ***) is the one you gave');
  }
  console.error('pglite-oxide: Ctrl+C stops');
  await new Promise<void>((resolve) => {
    onShutdown(async () => {
      await proxy.close();
      await closeEngine();
      resolve();
    });
  });
}
