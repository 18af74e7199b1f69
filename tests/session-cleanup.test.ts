import { describe, expect, it } from 'vitest';
import { cleanupFrames } from '../src/proxy/session/session-cleanup.js';

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
        temp: 'all',
        engineUser: 'postgres',
        settings: 'reset',
      }),
    );
    expect(frames).toEqual([
      ['Q', 'SET SESSION AUTHORIZATION "postgres"'],
      ['Q', 'RESET ROLE'],
      ['Q', 'DISCARD TEMP'],
      ['Q', 'RESET ALL'],
    ]);
  });

  it('keeps what other clients use, quotes every name, and puts every setting back', () => {
    const frames = messages(
      cleanupFrames({
        temp: [{ kind: 'TABLE', name: 'person' }],
        engineUser: 'post"gres',
        settings: 'reset',
      }),
    );
    expect(frames).toEqual([
      ['Q', 'SET SESSION AUTHORIZATION "post""gres"'],
      ['Q', 'RESET ROLE'],
      ['Q', 'DROP TABLE IF EXISTS pg_temp."person" CASCADE'],
      ['Q', 'RESET ALL'],
    ]);
  });
});
