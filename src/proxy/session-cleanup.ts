import { serialize } from 'pg-protocol';
import { dollarQuote, quoteIdent } from '../protocol/sql-quote.js';
import type { TempObject } from './statement-effects.js';

/** What a leaving client may have left in the shared engine session, and what others still use. */
export interface LeftBehind {
  /** Engine names of the client's protocol-level prepared statements. */
  statements: string[];
  /** Channels only this client listened to; 'all' when no other client is connected. */
  unlisten: string[] | 'all';
  /** SQL-level prepared statements the client made; 'all' when no other client is connected. */
  deallocate: string[] | 'all';
  /** Temporary objects the client made; 'all' when no other client is connected. */
  temp: TempObject[] | 'all';
  /**
   * Settings (lower-case names) other connected clients changed, which are left as they are; 'none'
   * when no other client is connected, and everything is reset.
   */
  keepSettings: ReadonlySet<string> | 'none';
  /** Settings (lower-case names) the client changed by SET: custom ones do not show in pg_settings. */
  settings: readonly string[];
  /** The engine's own user: the session's authorization goes back to it. */
  engineUser: string;
}

/**
 * The frames that put the engine session back as a leaving client found it. Each statement is a
 * Query of its own, so one that fails cannot undo the others. Settings are read from the engine
 * (`pg_settings` where the source is the session) rather than from the client's SQL, so a SET in
 * a function, `set_config()` or any spelling of a name is undone too.
 */
export function cleanupFrames(left: LeftBehind): Buffer {
  const frames: Buffer[] = left.statements.map((name) => serialize.close({ type: 'S', name }));
  if (frames.length > 0) frames.push(serialize.sync());
  const statements: string[] = [];
  if (left.unlisten === 'all') statements.push('UNLISTEN *');
  else statements.push(...left.unlisten.map((channel) => `UNLISTEN ${quoteIdent(channel)}`));
  if (left.deallocate === 'all') statements.push('DEALLOCATE ALL');
  else statements.push(...left.deallocate.map((name) => `DEALLOCATE ${quoteIdent(name)}`));
  // Temporary objects die with their session, as on a server of the client's own.
  if (left.temp === 'all') statements.push('DISCARD TEMP');
  else
    statements.push(
      ...left.temp.map(({ kind, name }) => `DROP ${kind} IF EXISTS pg_temp.${quoteIdent(name)} CASCADE`),
    );
  const keep = left.keepSettings === 'none' ? new Set<string>() : left.keepSettings;
  // The engine starts its session without a session_authorization setting to go back to, so
  // RESET SESSION AUTHORIZATION does nothing there: the user is named.
  if (!keep.has('session_authorization'))
    statements.push(`SET SESSION AUTHORIZATION ${quoteIdent(left.engineUser)}`);
  if (!keep.has('role')) statements.push('RESET ROLE');
  if (left.keepSettings === 'none') {
    statements.push('RESET ALL');
  } else {
    for (const name of left.settings) {
      if (keep.has(name) || name === 'role' || name === 'session_authorization') continue;
      statements.push(`RESET ${name.split('.').map(quoteIdent).join('.')}`);
    }
    statements.push(resetSessionSettings(keep));
  }
  for (const sql of statements) frames.push(serialize.query(sql));
  return Buffer.concat(frames);
}

function resetSessionSettings(keep: ReadonlySet<string>): string {
  const kept = ['role', 'session_authorization', ...keep].map(dollarQuote).join(', ');
  const body =
    'DECLARE setting text; BEGIN ' +
    'FOR setting IN SELECT name FROM pg_catalog.pg_settings ' +
    `WHERE source = 'session' AND lower(name) <> ALL (ARRAY[${kept}]::text[]) LOOP ` +
    "BEGIN EXECUTE 'RESET ' || pg_catalog.quote_ident(setting); " +
    'EXCEPTION WHEN OTHERS THEN NULL; END; ' +
    'END LOOP; END';
  return `DO ${dollarQuote(body)}`;
}
