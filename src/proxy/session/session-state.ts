// What each client owns in the one engine session all clients share: its settings (startup
// parameters, then its own SET and RESET), and how the engine is brought to them when it passes
// from one client to another. Only differences are sent, and nothing when clients do not differ.
import { serialize } from 'pg-protocol';
import { readRows } from '../../protocol/backend-rows.js';
import { dollarQuote, quoteIdent } from '../../protocol/sql-quote.js';

/** Settings pg_settings does not list: who the session runs as. Applied first when undone, last when set. */
const IDENTITY = ['session_authorization', 'role'] as const;

/** One client's session settings, as lower-case names and the values `current_setting()` gives. */
export class ClientSettings {
  /** Its settings that differ from the engine's defaults: startup values, then what it changed. */
  values: Map<string, string>;
  /** Custom (dotted) settings it set: pg_settings does not list them, so they are read by name. */
  private readonly customNames = new Set<string>();
  /** It changed a setting once: a ROLLBACK may then have undone one, and its values are read again. */
  touched = false;

  /** `startup`: the settings it asked for at startup. RESET goes back to these, as on a server. */
  constructor(readonly startup: ReadonlyMap<string, string>) {
    this.values = new Map(startup);
  }

  /** Names the engine has to be read for: custom ones it set, and the identity settings. */
  readNames(): string[] {
    return [...IDENTITY, ...this.customNames];
  }

  /** Notes a unit that changed settings: the names it SET and RESET. */
  changed(set: readonly string[], resets: readonly string[]): void {
    this.touched = true;
    for (const name of set) if (name.includes('.')) this.customNames.add(name.toLowerCase());
    if (resets.includes('*')) this.customNames.clear();
  }

  /**
   * The startup values a RESET undid on the engine (which goes back to its own defaults), to set
   * again: on a server, RESET goes back to the value the client connected with.
   */
  startupValuesReset(resets: readonly string[]): Map<string, string> {
    const again = new Map<string, string>();
    for (const [name, value] of this.startup) {
      if (resets.includes('*') ? !IDENTITY.includes(name as never) : resets.includes(name))
        again.set(name, value);
    }
    return again;
  }
}

const DURATION_UNITS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * A time setting's value in milliseconds, as PostgreSQL reads it (no unit: milliseconds); null
 * for 0 (no limit) and for what it would not accept.
 */
export function durationMs(value: string | undefined): number | null {
  const match = value?.trim().match(/^(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?$/);
  if (!match) return null;
  const ms = Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!;
  return ms > 0 ? ms : null;
}

/** The Query that reads a session's settings: those set in the session, then `names` by name. */
export function readSettingsQuery(names: readonly string[]): Buffer {
  const listed = names.map(dollarQuote).join(', ');
  return serialize.query(
    // Qualified throughout: the client's search_path is in force.
    'SELECT pg_catalog.lower(name), pg_catalog.current_setting(name) FROM pg_catalog.pg_settings ' +
      `WHERE source OPERATOR(pg_catalog.=) 'session' UNION ALL ` +
      `SELECT name, pg_catalog.current_setting(name, true) ` +
      `FROM pg_catalog.unnest(ARRAY[${listed}]::pg_catalog.text[]) AS name`,
  );
}

/**
 * The settings read by readSettingsQuery's output, without those at their defaults: no role, the
 * engine's own user, an unknown custom name. Null when the query failed (an aborted transaction).
 */
export function settingsRead(
  output: Uint8Array,
  engineUser: string,
  loginUser: string,
): Map<string, string> | null {
  const { rows, error } = readRows(output);
  if (error) return null;
  const values = new Map<string, string>();
  for (const [name, value] of rows) {
    if (name == null || value == null) continue;
    if (name === 'role' && value === 'none') continue;
    if (name === 'session_authorization') {
      // '' is the engine's boot value, which a RESET (by any path) leaves: on a server RESET goes
      // back to the login role, and so does the client here.
      const who = value === '' ? loginUser : value;
      if (who !== engineUser || loginUser !== engineUser) values.set(name, who);
      continue;
    }
    values.set(name, value);
  }
  return values;
}

/**
 * How the engine goes from one client's settings to another's: `undo` runs as the engine's own
 * login (it may need its superuser to undo another client's identity and superuser-only
 * settings), `apply` as the client's (PostgreSQL checks it as that client: nothing of it runs
 * with more than the client's own rights). Either is null when it has nothing to do.
 */
export interface SwitchFrames {
  undo: Buffer | null;
  apply: Buffer | null;
}

/**
 * The frames that bring the engine from the settings `applied` for the client before (null when
 * they are not known; then `others` names every setting that may be set) to `wanted`: a Query for
 * each change, so that one bad value cannot undo the others. Who the session runs as is undone
 * first, then the client's session authorization is set before its other settings, so that
 * PostgreSQL checks those as the client's role (a superuser-only setting is refused), and its
 * role last.
 */
export function switchFrames(
  applied: ReadonlyMap<string, string> | null,
  wanted: ReadonlyMap<string, string>,
  others: Iterable<string>,
  engineUser: string,
): SwitchFrames {
  const stale = new Set(applied ? applied.keys() : [...others, ...IDENTITY]);
  const undo: string[] = [];
  const statements: string[] = [];
  const changes = (name: string) => applied === null || applied.get(name) !== wanted.get(name);
  if (changes('session_authorization') && stale.has('session_authorization'))
    undo.push(`SET SESSION AUTHORIZATION ${quoteIdent(engineUser)}`);
  if (changes('role') && stale.has('role')) undo.push('RESET ROLE');
  for (const name of stale) {
    if (!wanted.has(name) && !IDENTITY.includes(name as never)) undo.push(`RESET ${settingName(name)}`);
  }
  const setting = (name: string, value: string) =>
    // set_config() takes the value as a startup parameter gives it (a list such as a search_path
    // stays a list), where SET would read one quoted string as one element.
    `SELECT pg_catalog.set_config(${dollarQuote(name)}, ${dollarQuote(value)}, false)`;
  const identity = (name: (typeof IDENTITY)[number]) => {
    const value = wanted.get(name);
    if (value !== undefined && changes(name)) statements.push(setting(name, value));
  };
  identity('session_authorization');
  for (const [name, value] of wanted) {
    if (!IDENTITY.includes(name as never) && applied?.get(name) !== value)
      statements.push(setting(name, value));
  }
  identity('role');
  return { undo: queriesOf(undo), apply: queriesOf(statements) };
}

/** One Query a statement; null for none. */
function queriesOf(statements: readonly string[]): Buffer | null {
  return statements.length === 0 ? null : Buffer.concat(statements.map((sql) => serialize.query(sql)));
}

function settingName(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}
