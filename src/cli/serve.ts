import { readFile } from 'node:fs/promises';
import { InvalidInputError } from '../errors.js';
import { installAndInitIn } from '../install/install.js';
import { type ProxyHandle, startProxy } from '../proxy/server.js';
import { InteractiveRuntime } from '../runtime/interactive-runtime.js';
import { startEphemeralDatabase, type TemplateFlags } from './ephemeral.js';
import { onShutdown } from './shutdown.js';

interface ServeFlags extends TemplateFlags {
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
function withoutPassword(connectionString: string): string {
  const url = new URL(connectionString);
  if (url.password) url.password = '***';
  return url.toString();
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const listen = {
    tcp: flags.socketDir === undefined,
    host: flags.host,
    // A Unix socket is named after a port too: libpq looks for .s.PGSQL.5432 unless told.
    port: flags.socketDir !== undefined && flags.port === 0 ? 5432 : flags.port,
    socketDir: flags.socketDir,
    password: await servedPassword(flags),
    onWarning: (message: string) => console.error(`pglite-oxide: ${message}`),
  };
  let proxy: ProxyHandle;
  let closeEngine: () => Promise<void>;
  if (flags.data) {
    if (flags.migrations || flags.seed) {
      throw new InvalidInputError(
        '--migrations and --seed make a fresh database; leave them out with --data.',
      );
    }
    const runtime = await InteractiveRuntime.start(await installAndInitIn(flags.data));
    proxy = await startProxy({ ...listen, runtime }).catch(async (error) => {
      await runtime.close();
      throw error;
    });
    closeEngine = () => runtime.close();
  } else {
    const database = await startEphemeralDatabase(flags, listen);
    proxy = database.proxy;
    closeEngine = () => database.close();
  }
  // The password is never printed: stdout may be a CI log.
  const printable = withoutPassword(proxy.connectionString);
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
