import { describe, expect, it } from 'vitest';
import { cleanupFrames } from '../src/proxy/session-cleanup.js';

/** The frontend messages of `bytes` as [type, text] pairs (Query SQL, Close name). */
function messages(bytes: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let at = 0; at < bytes.length; ) {
    const type = String.fromCharCode(bytes[at]!);
    const end = at + 1 + bytes.readInt32BE(at + 1);
    const body = bytes.subarray(at + 5, end);
    out.push([
      type,
      type === 'C' ? body.toString('utf8', 1, body.length - 1) : body.toString('utf8', 0, body.length - 1),
    ]);
    at = end;
  }
  return out;
}

describe('cleanupFrames', () => {
  it('undoes everything when the leaving client was the last one, one statement per Query', () => {
    const frames = messages(
      cleanupFrames({
        statements: ['pgo7s1', 'pgo7s2'],
        unlisten: 'all',
        deallocate: 'all',
        temp: 'all',
        keepSettings: 'none',
        settings: ['my.x'],
        engineUser: 'postgres',
      }),
    );
    expect(frames).toEqual([
      ['C', 'pgo7s1'],
      ['C', 'pgo7s2'],
      ['S', ''],
      ['Q', 'UNLISTEN *'],
      ['Q', 'DEALLOCATE ALL'],
      ['Q', 'DISCARD TEMP'],
      ['Q', 'SET SESSION AUTHORIZATION "postgres"'],
      ['Q', 'RESET ROLE'],
      ['Q', 'RESET ALL'],
    ]);
  });

  it("keeps what other clients use, quotes every name, and reads the rest from the engine's pg_settings", () => {
    const frames = messages(
      cleanupFrames({
        statements: [],
        unlisten: ['chan"A'],
        deallocate: ['plan'],
        temp: [{ kind: 'TABLE', name: 'person' }],
        keepSettings: new Set(['search_path', 'role']),
        settings: ['search_path', 'my.x', 'role'],
        engineUser: 'post"gres',
      }),
    );
    expect(frames.slice(0, 5)).toEqual([
      ['Q', 'UNLISTEN "chan""A"'],
      ['Q', 'DEALLOCATE "plan"'],
      ['Q', 'DROP TABLE IF EXISTS pg_temp."person" CASCADE'],
      ['Q', 'SET SESSION AUTHORIZATION "post""gres"'],
      ['Q', 'RESET "my"."x"'],
    ]);
    const [type, sql] = frames[5]!;
    expect(type).toBe('Q');
    expect(sql).toMatch(/^DO \$q\d*\$/);
    expect(sql).toContain("source = 'session'");
    expect(sql).toContain('ARRAY[$q$role$q$, $q$session_authorization$q$, $q$search_path$q$, $q$role$q$]');
    expect(frames).toHaveLength(6);
  });
});
