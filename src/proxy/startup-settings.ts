import { serialize } from 'pg-protocol';
import { dollarQuote, quoteIdent } from '../protocol/sql-quote.js';

/** Startup parameters that are not settings, or that the proxy keeps for itself. */
const NOT_SETTINGS = new Set([
  'user',
  'database',
  'options',
  'replication',
  'application_name',
  'fallback_application_name',
  // The proxy reads and writes the wire in UTF-8; the engine's encoding is the server's.
  'client_encoding',
]);

/**
 * The settings a client asks for at startup, as PostgreSQL reads them: every startup parameter
 * that names a setting, then `options` (`-c name=value`, `--name=value`, as libpq's PGOPTIONS).
 * Names are lower-cased: setting names are case-insensitive.
 */
export function startupSettings(params: ReadonlyMap<string, string>): Map<string, string> {
  const settings = new Map<string, string>();
  for (const [name, value] of params) {
    if (!NOT_SETTINGS.has(name.toLowerCase()) && !name.startsWith('_pq_.'))
      settings.set(name.toLowerCase(), value);
  }
  const words = splitOptions(params.get('options') ?? '');
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const assignment =
      word === '-c'
        ? words[++i]
        : word.startsWith('-c')
          ? word.slice(2)
          : word.startsWith('--')
            ? word.slice(2)
            : undefined;
    const equals = assignment?.indexOf('=') ?? -1;
    if (assignment && equals > 0) {
      settings.set(
        assignment.slice(0, equals).replaceAll('-', '_').toLowerCase(),
        assignment.slice(equals + 1),
      );
    }
  }
  return settings;
}

/** `options` split on white space; a backslash keeps the next character (libpq's rule). */
function splitOptions(options: string): string[] {
  const words: string[] = [];
  let word = '';
  for (let i = 0; i < options.length; i++) {
    const char = options[i]!;
    if (char === '\\' && i + 1 < options.length) word += options[++i];
    else if (/\s/.test(char)) {
      if (word) words.push(word);
      word = '';
    } else word += char;
  }
  if (word) words.push(word);
  return words;
}

/**
 * The frames that bring the engine from the startup settings applied for the client before
 * (`applied`; null when they are not known, then `others` names what may be set) to `wanted`:
 * a Query for each change, so that one bad value cannot undo the others. Null when nothing changes.
 */
export function switchFrames(
  applied: ReadonlyMap<string, string> | null,
  wanted: ReadonlyMap<string, string>,
  others: Iterable<string>,
): Buffer | null {
  const statements: string[] = [];
  const stale = applied ? applied.keys() : others;
  for (const name of new Set(stale)) if (!wanted.has(name)) statements.push(`RESET ${settingName(name)}`);
  for (const [name, value] of wanted) {
    // set_config() takes the value as a startup parameter gives it (a list such as a search_path
    // stays a list), where SET would read one quoted string as one element.
    if (applied?.get(name) !== value) {
      statements.push(`SELECT pg_catalog.set_config(${dollarQuote(name)}, ${dollarQuote(value)}, false)`);
    }
  }
  return statements.length === 0 ? null : Buffer.concat(statements.map((sql) => serialize.query(sql)));
}

function settingName(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}
