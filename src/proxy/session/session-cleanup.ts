import { serialize } from 'pg-protocol';
import { quoteIdent } from '../../protocol/sql-quote.js';
import type { TempObject } from '../sql/statement-effects.js';

/**
 * Run as the leaving client (the engine then has the client's own prepared statements, cursors
 * and temporary schema in place, see ClientObjects; its advisory locks and LISTEN channels are
 * its own, see AdvisoryLocks and ClientChannels): they go, as they would with its backend.
 * Under a test's outer transaction the clients share the session's cursors and temporary schema:
 * its end closes the cursors, and the client's temporary objects are dropped by name.
 */
export function ownObjectsClosed(ownSession: boolean): Buffer {
  const always = 'DEALLOCATE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all()';
  return serialize.query(ownSession ? `CLOSE ALL; DISCARD TEMP; ${always}` : always);
}

/** What a leaving client may have left in the shared engine session, and what others still use. */
export interface LeftBehind {
  /** Temporary objects the client made; 'all' when no other client is connected. */
  temp: TempObject[] | 'all';
  /** The engine's own user: the session's authorization goes back to it. */
  engineUser: string;
  /** `reset`: every setting goes back to the engine's defaults (the next client sets its own). */
  settings: 'reset' | 'keep';
}

/**
 * The frames that put the engine session back as a leaving client found it. Each statement is a
 * Query of its own, so one that fails cannot undo the others.
 */
export function cleanupFrames(left: LeftBehind): Buffer {
  const frames: Buffer[] = [];
  // The engine may run as another client's role: its own superuser does the rest. The engine
  // starts its session without a session_authorization setting to go back to, so RESET SESSION
  // AUTHORIZATION does nothing there: the user is named.
  const statements = [`SET SESSION AUTHORIZATION ${quoteIdent(left.engineUser)}`, 'RESET ROLE'];
  // Temporary objects die with their session, as on a server of the client's own.
  if (left.temp === 'all') statements.push('DISCARD TEMP');
  else
    statements.push(
      ...left.temp.map(({ kind, name }) => `DROP ${kind} IF EXISTS pg_temp.${quoteIdent(name)} CASCADE`),
    );
  // Every setting goes back to the engine's defaults; the next client's are set for its units.
  if (left.settings === 'reset') statements.push('RESET ALL');
  for (const sql of statements) frames.push(serialize.query(sql));
  return Buffer.concat(frames);
}
