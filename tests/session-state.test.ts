import { describe, expect, it } from 'vitest';
import { commandComplete, errorResponse, readyForQuery } from '../src/protocol/backend-writer.js';
import {
  ClientSettings,
  durationMs,
  readSettingsQuery,
  type SwitchFrames,
  settingsRead,
  switchFrames,
} from '../src/proxy/session/session-state.js';
import { dataRowFrame } from './helpers/wire.js';

/** The SQL of each Query frame. */
function queries(frames: Buffer | null): string[] {
  const out: string[] = [];
  for (let at = 0; frames && at < frames.length; ) {
    const end = at + 1 + frames.readInt32BE(at + 1);
    out.push(frames.toString('utf8', at + 5, end - 1));
    at = end;
  }
  return out;
}

/** Both parts of a switch, as their statements. */
function parts(frames: SwitchFrames): { undo: string[]; apply: string[] } {
  return { undo: queries(frames.undo), apply: queries(frames.apply) };
}

describe('switchFrames', () => {
  it('sets only what differs, resets what the previous client had, and nothing when equal', () => {
    const applied = new Map([
      ['timezone', 'UTC'],
      ['search_path', 'a'],
    ]);
    const wanted = new Map([
      ['timezone', 'Asia/Tokyo'],
      ['statement_timeout', '300'],
    ]);
    expect(parts(switchFrames(applied, wanted, [], 'postgres'))).toEqual({
      undo: ['RESET "search_path"'],
      apply: [
        'SELECT pg_catalog.set_config($q$timezone$q$, $q$Asia/Tokyo$q$, false)',
        'SELECT pg_catalog.set_config($q$statement_timeout$q$, $q$300$q$, false)',
      ],
    });
    expect(switchFrames(wanted, wanted, [], 'postgres')).toEqual({ undo: null, apply: null });
  });

  it('resets every name a connected client may have set, and who the session runs as, when what is applied is not known', () => {
    expect(parts(switchFrames(null, new Map(), ['timezone', 'x.y'], 'postgres'))).toEqual({
      undo: ['SET SESSION AUTHORIZATION "postgres"', 'RESET ROLE', 'RESET "timezone"', 'RESET "x"."y"'],
      apply: [],
    });
  });

  it('undoes who the session runs as first (as the engine), then sets, as the client, its authorization before the settings checked as that role, and its role last', () => {
    const asApp = new Map([
      ['session_authorization', 'app'],
      ['role', 'reader'],
      ['search_path', 'app'],
    ]);
    expect(parts(switchFrames(new Map(), asApp, [], 'postgres'))).toEqual({
      undo: [],
      apply: [
        'SELECT pg_catalog.set_config($q$session_authorization$q$, $q$app$q$, false)',
        'SELECT pg_catalog.set_config($q$search_path$q$, $q$app$q$, false)',
        'SELECT pg_catalog.set_config($q$role$q$, $q$reader$q$, false)',
      ],
    });
    expect(parts(switchFrames(asApp, new Map([['work_mem', '8MB']]), [], 'postgres'))).toEqual({
      undo: ['SET SESSION AUTHORIZATION "postgres"', 'RESET ROLE', 'RESET "search_path"'],
      apply: ['SELECT pg_catalog.set_config($q$work_mem$q$, $q$8MB$q$, false)'],
    });
  });
});

describe('reading a session’s settings', () => {
  it('asks the engine for what the session set, and for the settings pg_settings does not list', () => {
    const [sql] = queries(readSettingsQuery(['session_authorization', 'role', 'my.x']));
    expect(sql).toContain("FROM pg_catalog.pg_settings WHERE source OPERATOR(pg_catalog.=) 'session'");
    expect(sql).toContain('ARRAY[$q$session_authorization$q$, $q$role$q$, $q$my.x$q$]::pg_catalog.text[]');
  });

  it('keeps values that differ from the defaults', () => {
    const output = Buffer.concat([
      dataRowFrame('timezone', 'Asia/Tokyo'),
      dataRowFrame('session_authorization', ''),
      dataRowFrame('role', 'none'),
      dataRowFrame('my.x', null),
      dataRowFrame('my.y', '1'),
      commandComplete('SELECT 5'),
      readyForQuery('I'),
    ]);
    expect(settingsRead(output, 'postgres', 'postgres')).toEqual(
      new Map([
        ['timezone', 'Asia/Tokyo'],
        ['my.y', '1'],
      ]),
    );
    expect(
      settingsRead(Buffer.concat([dataRowFrame('session_authorization', 'app')]), 'postgres', 'postgres'),
    ).toEqual(new Map([['session_authorization', 'app']]));
    // '' is what a RESET left: the login role, for a client that logged in as one.
    expect(
      settingsRead(Buffer.concat([dataRowFrame('session_authorization', '')]), 'postgres', 'app'),
    ).toEqual(new Map([['session_authorization', 'app']]));
    const failed = errorResponse({ severity: 'ERROR', code: '25P02', message: 'aborted' });
    expect(settingsRead(Buffer.concat([failed, readyForQuery('E')]), 'postgres', 'postgres')).toBeNull();
  });
});

describe('ClientSettings', () => {
  it('starts from the startup settings, and reads custom names it set by name', () => {
    const settings = new ClientSettings(new Map([['search_path', 'app']]));
    expect(settings.values).toEqual(new Map([['search_path', 'app']]));
    expect(settings.touched).toBe(false);
    settings.changed(['My.X', 'work_mem'], []);
    expect(settings.touched).toBe(true);
    expect(settings.readNames()).toEqual(['session_authorization', 'role', 'my.x']);
    settings.changed([], ['*']);
    expect(settings.readNames()).toEqual(['session_authorization', 'role']);
  });

  it('gives the startup values a RESET undid, to set again', () => {
    const settings = new ClientSettings(
      new Map([
        ['search_path', 'app'],
        ['timezone', 'UTC'],
        ['session_authorization', 'app'],
      ]),
    );
    expect(settings.startupValuesReset(['search_path', 'work_mem'])).toEqual(
      new Map([['search_path', 'app']]),
    );
    // RESET ALL leaves who the session runs as alone.
    expect(settings.startupValuesReset(['*'])).toEqual(
      new Map([
        ['search_path', 'app'],
        ['timezone', 'UTC'],
      ]),
    );
  });
});

describe('durationMs', () => {
  it('reads time settings as PostgreSQL does: no unit is milliseconds, 0 is no limit', () => {
    expect(durationMs('50ms')).toBe(50);
    expect(durationMs('250')).toBe(250);
    expect(durationMs('2s')).toBe(2_000);
    expect(durationMs(' 1 min ')).toBe(60_000);
    expect(durationMs('1h')).toBe(3_600_000);
    expect(durationMs('0')).toBeNull();
    expect(durationMs('soon')).toBeNull();
    expect(durationMs(undefined)).toBeNull();
  });
});
