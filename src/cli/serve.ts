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
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const listen = {
    tcp: flags.socketDir === undefined,
    host: flags.host,
    // A Unix socket is named after a port too: libpq looks for .s.PGSQL.5432 unless told.
    port: flags.socketDir !== undefined && flags.port === 0 ? 5432 : flags.port,
    socketDir: flags.socketDir,
    password: flags.password,
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
  console.log(proxy.connectionString);
  console.error(
    `pglite-oxide: serving ${flags.data ?? 'a throwaway database'}; try: psql "${proxy.connectionString}"`,
  );
  console.error('pglite-oxide: Ctrl+C stops');
  await new Promise<void>((resolve) => {
    onShutdown(async () => {
      await proxy.close();
      await closeEngine();
      resolve();
    });
  });
}
