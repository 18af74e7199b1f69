/**
 * The environment an engine instance starts with. Keys the engine honours are mapped to its
 * startup (user, database, time zone, client encoding, DateStyle); the rest describe the guest.
 */
export interface StandardEnv {
  ENVIRONMENT: string;
  PREFIX: string;
  PGDATA: string;
  PGSYSCONFDIR: string;
  PGUSER: string;
  PGDATABASE: string;
  MODE: string;
  REPL: string;
  PGCLIENTENCODING: string;
  LC_CTYPE: string;
  PG_COLOR: string;
  PATH: string;
  TZ: string;
  PGTZ: string;
  [name: string]: string;
}

// Paths as the engine sees them inside its own filesystem, not host paths.
const GUEST_PREFIX = '/pglite';
const GUEST_PGDATA = '/pglite/data';

/** The defaults: user `postgres`, database `postgres`, UTF8, UTC. Override before the runtime starts. */
export function standardEnv(): StandardEnv {
  return {
    ENVIRONMENT: 'wasm32-emscripten',
    PREFIX: GUEST_PREFIX,
    PGDATA: GUEST_PGDATA,
    PGSYSCONFDIR: GUEST_PREFIX,
    PGUSER: 'postgres',
    PGDATABASE: 'postgres',
    MODE: 'REACT',
    REPL: 'N',
    PGCLIENTENCODING: 'UTF8',
    LC_CTYPE: 'C.UTF-8',
    PG_COLOR: 'never',
    PATH: `${GUEST_PREFIX}/bin`,
    TZ: 'UTC',
    PGTZ: 'UTC',
  };
}

/** Server settings (`-c name=value`) implied by the environment. PGTZ wins over TZ, as in libpq. */
export function settingsFromEnv(env: Record<string, string | undefined>): Record<string, string> {
  const settings: Record<string, string> = {};
  const timeZone = env.PGTZ ?? env.TZ;
  if (timeZone) settings.TimeZone = timeZone;
  if (env.PGCLIENTENCODING) settings.client_encoding = env.PGCLIENTENCODING;
  if (env.PGDATESTYLE) settings.DateStyle = env.PGDATESTYLE;
  return settings;
}
