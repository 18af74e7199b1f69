import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { ProtocolViolationError } from '../src/errors.js';
import { readStartupPacket, welcomeMessages } from '../src/proxy/login/startup.js';

/** A StartupMessage body (no length word) for protocol `major.minor` with these parameters. */
function startup(params: Record<string, string>, major = 3, minor = 0): Buffer {
  const pairs = Object.entries(params).flatMap(([name, value]) => [name, '\0', value, '\0']);
  const version = Buffer.alloc(4);
  version.writeUInt16BE(major, 0);
  version.writeUInt16BE(minor, 2);
  return Buffer.concat([version, Buffer.from(`${pairs.join('')}\0`)]);
}

const withoutLength = (frame: Buffer) => frame.subarray(4);

describe('readStartupPacket', () => {
  it('reads a StartupMessage as PostgreSQL does', () => {
    expect(
      readStartupPacket(
        startup({
          user: 'app',
          database: 'shop',
          application_name: 'svc',
          options: '-c search_path=app',
          TimeZone: 'Europe/Paris',
        }),
      ),
    ).toEqual({
      kind: 'connect',
      user: 'app',
      database: 'shop',
      settings: new Map([
        ['timezone', 'Europe/Paris'],
        ['search_path', 'app'],
      ]),
      applicationName: 'svc',
      negotiation: null,
    });
  });

  it('takes the user name for the database, and fallback_application_name when no name is given', () => {
    const request = readStartupPacket(startup({ user: 'app', fallback_application_name: 'psql' }));
    expect(request).toMatchObject({ kind: 'connect', database: 'app', applicationName: 'psql' });
    const named = readStartupPacket(
      startup({ user: 'app', application_name: 'mine', fallback_application_name: 'psql' }),
    );
    expect(named).toMatchObject({ applicationName: 'mine' });
  });

  it('answers a newer 3.x client, or one asking for protocol options, with NegotiateProtocolVersion', () => {
    const newer = readStartupPacket(startup({ user: 'app' }, 3, 2));
    expect(newer.kind === 'connect' && newer.negotiation).toEqual(
      Buffer.from([0x76, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    const withOption = readStartupPacket(startup({ user: 'app', '_pq_.x': '1' }));
    expect(withOption.kind === 'connect' && withOption.negotiation).toEqual(
      Buffer.concat([Buffer.from([0x76, 0, 0, 0, 19, 0, 0, 0, 0, 0, 0, 0, 1]), Buffer.from('_pq_.x\0')]),
    );
  });

  it('refuses what PostgreSQL refuses, with its codes and words', () => {
    expect(readStartupPacket(startup({ user: 'app' }, 2, 0))).toEqual({
      kind: 'refused',
      error: { code: '0A000', message: 'unsupported frontend protocol 2.0: server supports 3.0 to 3.0' },
    });
    expect(readStartupPacket(startup({ database: 'shop' }))).toEqual({
      kind: 'refused',
      error: { code: '28000', message: 'no PostgreSQL user name specified in startup packet' },
    });
    expect(readStartupPacket(startup({ user: 'app', replication: 'database' }))).toMatchObject({
      kind: 'refused',
      error: { code: '0A000' },
    });
    expect(readStartupPacket(startup({ user: 'app', replication: 'false' }))).toMatchObject({
      kind: 'connect',
    });
  });

  it('reads SSLRequest, GSSENCRequest and CancelRequest', () => {
    expect(readStartupPacket(withoutLength(serialize.requestSsl()))).toEqual({ kind: 'encryption' });
    expect(readStartupPacket(Buffer.from([4, 0xd2, 0x16, 0x30]))).toEqual({ kind: 'encryption' });
    expect(readStartupPacket(withoutLength(serialize.cancel(4242, 77)))).toEqual({
      kind: 'cancel',
      processId: 4242,
      secretKey: 77,
    });
    expect(readStartupPacket(Buffer.from([4, 0xd2, 0x16, 0x2e]))).toEqual({
      kind: 'cancel',
      processId: null,
      secretKey: null,
    });
  });

  it('throws on a broken layout, which closes the connection without a word', () => {
    const truncated = Buffer.concat([startup({}).subarray(0, 4), Buffer.from('user\0app')]);
    expect(() => readStartupPacket(truncated)).toThrow(ProtocolViolationError);
  });
});

describe('welcomeMessages', () => {
  it("sends AuthenticationOk, each setting (the client's own where it has one), its key and ReadyForQuery", () => {
    const settings = new Map([
      ['TimeZone', 'UTC'],
      ['application_name', ''],
    ]);
    const own = (name: string) => (name === 'application_name' ? 'svc' : undefined);
    expect(welcomeMessages(settings, own, 7, 9)).toEqual(
      Buffer.concat([
        Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]),
        Buffer.from([0x53, 0, 0, 0, 17]),
        Buffer.from('TimeZone\0UTC\0'),
        Buffer.from([0x53, 0, 0, 0, 25]),
        Buffer.from('application_name\0svc\0'),
        Buffer.from([0x4b, 0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 9]),
        Buffer.from([0x5a, 0, 0, 0, 5, 0x49]),
      ]),
    );
  });
});
