import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { ProtocolViolationError } from '../src/errors.js';
import { FrontendReader } from '../src/protocol/frontend-reader.js';

const limits = { maxStartupBytes: 10_000, maxMessageBytes: 1024 * 1024 };

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size));
  return out;
}

describe('FrontendReader', () => {
  it('returns a message that arrives in many small chunks, header split too, byte for byte', () => {
    const query = serialize.query(`SELECT '${'x'.repeat(50_000)}'`);
    const sync = serialize.sync();
    const reader = new FrontendReader(limits);
    reader.authenticated();
    const received: Buffer[] = [];
    for (const chunk of chunks(Buffer.concat([query, sync]), 3)) {
      reader.push(Buffer.from(chunk));
      for (let message = reader.next(); message; message = reader.next())
        received.push(Buffer.from(message.frame));
    }
    expect(received).toEqual([query, sync]);
    expect(reader.buffered).toBe(0);
  });

  it('keeps earlier messages valid after later pushes', () => {
    const reader = new FrontendReader(limits);
    reader.authenticated();
    reader.push(Buffer.concat([serialize.query('SELECT 1'), serialize.query('SELECT 2').subarray(0, 4)]));
    const first = reader.next()!;
    expect(reader.next()).toBeNull();
    reader.push(serialize.query('SELECT 2').subarray(4));
    const second = reader.next()!;
    expect(first.body.toString('utf8', 0, 8)).toBe('SELECT 1');
    expect(second.body.toString('utf8', 0, 8)).toBe('SELECT 2');
  });

  it('holds a client that has not logged in to the startup limit, then to maxMessageBytes', () => {
    const password = Buffer.concat([Buffer.from('p'), Buffer.alloc(4)]);
    password.writeInt32BE(20_004, 1);
    const before = new FrontendReader(limits);
    before.push(password);
    expect(() => before.next()).toThrow(ProtocolViolationError);
    const after = new FrontendReader(limits);
    after.authenticated();
    after.push(password);
    expect(after.next()).toBeNull();
    expect(after.buffered).toBe(5);
  });

  it('refuses a startup packet over 10,000 bytes and a message length below 4', () => {
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(10_001, 0);
    const reader = new FrontendReader(limits);
    reader.push(startup);
    expect(() => reader.nextStartup()).toThrow(/invalid length of startup packet/);
    const bad = new FrontendReader(limits);
    bad.authenticated();
    bad.push(Buffer.from([0x51, 0, 0, 0, 3]));
    expect(() => bad.next()).toThrow(/invalid message length/);
  });
});
