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
