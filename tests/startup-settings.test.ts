import { describe, expect, it } from 'vitest';
import { startupSettings, switchFrames } from '../src/proxy/startup-settings.js';

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

describe('startupSettings', () => {
  it('reads settings from startup parameters and from options, as PostgreSQL does', () => {
    const params = new Map([
      ['user', 'postgres'],
      ['database', 'app'],
      ['application_name', 'svc'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO'],
      ['_pq_.option', 'x'],
      ['options', '-c statement_timeout=5s -csearch_path=a,b --lock-timeout=1s -c x.y=with\\ space'],
    ]);
    expect([...startupSettings(params)]).toEqual([
      ['datestyle', 'ISO'],
      ['statement_timeout', '5s'],
      ['search_path', 'a,b'],
      ['lock_timeout', '1s'],
      ['x.y', 'with space'],
    ]);
  });
});

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
    expect(queries(switchFrames(applied, wanted, []))).toEqual([
      'RESET "search_path"',
      'SELECT pg_catalog.set_config($q$timezone$q$, $q$Asia/Tokyo$q$, false)',
      'SELECT pg_catalog.set_config($q$statement_timeout$q$, $q$300$q$, false)',
    ]);
    expect(switchFrames(wanted, wanted, [])).toBeNull();
  });

  it('resets every name another connected client may have set when what is applied is not known', () => {
    expect(queries(switchFrames(null, new Map(), ['timezone', 'x.y']))).toEqual([
      'RESET "timezone"',
      'RESET "x"."y"',
    ]);
  });
});
