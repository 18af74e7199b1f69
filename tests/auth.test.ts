import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { ProtocolViolationError } from '../src/errors.js';
import { type AuthExchange, type AuthStep, PasswordAuthenticator } from '../src/proxy/login/auth.js';

/** The body of a frontend message: without its type byte and length. */
const body = (message: Buffer) => message.subarray(5);

/** An Authentication ('R') message: its request code and what follows it. */
function authRequest(message: Buffer): { code: number; data: Buffer } {
  expect(String.fromCharCode(message[0]!)).toBe('R');
  expect(message.readInt32BE(1)).toBe(message.length - 1);
  return { code: message.readInt32BE(5), data: message.subarray(9) };
}

const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
const md5Hex = (data: string | Buffer) => createHash('md5').update(data).digest('hex');

function replyOf(step: AuthStep): Buffer {
  if (!('reply' in step) || !step.reply) throw new Error(`expected a reply, got ${JSON.stringify(step)}`);
  return step.reply;
}

/** A SCRAM-SHA-256 client (RFC 5802 / RFC 7677), one exchange at a time. */
class ScramClient {
  readonly nonce = randomBytes(18).toString('base64');
  readonly clientFirstBare: string;
  serverFirst = '';
  serverNonce = '';
  salt = Buffer.alloc(0);
  iterations = 0;

  constructor(
    private readonly password: string,
    user = '',
  ) {
    this.clientFirstBare = `n=${user},r=${this.nonce}`;
  }

  /** What the client-final-message's c= carries: the gs2 header of the client-first-message. */
  private channelBinding = 'biws';

  first(gs2Header = 'n,,'): Buffer {
    this.channelBinding = Buffer.from(gs2Header).toString('base64');
    return body(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', gs2Header + this.clientFirstBare));
  }

  readServerFirst(reply: Buffer): void {
    const { code, data } = authRequest(reply);
    expect(code).toBe(11); // AuthenticationSASLContinue
    this.serverFirst = data.toString('utf8');
    const match = /^r=([^,]+),s=([^,]+),i=(\d+)$/.exec(this.serverFirst);
    if (!match) throw new Error(`unexpected server-first-message ${this.serverFirst}`);
    this.serverNonce = match[1]!;
    this.salt = Buffer.from(match[2]!, 'base64');
    this.iterations = Number(match[3]);
  }

  private keys(withoutProof: string) {
    const salted = pbkdf2Sync(this.password.normalize('NFKC'), this.salt, this.iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = sha256(clientKey);
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    const serverSignature = hmac(hmac(salted, 'Server Key'), authMessage).toString('base64');
    return { proof: proof.toString('base64'), serverSignature };
  }

  /** The client-final-message, and the server signature the server must answer with. */
  final(
    nonce = this.serverNonce,
    channelBinding = this.channelBinding,
  ): { message: Buffer; serverSignature: string } {
    const withoutProof = `c=${channelBinding},r=${nonce}`;
    const { proof, serverSignature } = this.keys(withoutProof);
    return {
      message: body(serialize.sendSCRAMClientFinalMessage(`${withoutProof},p=${proof}`)),
      serverSignature,
    };
  }

  finalWithProof(proof: string): Buffer {
    return body(
      serialize.sendSCRAMClientFinalMessage(`c=${this.channelBinding},r=${this.serverNonce},p=${proof}`),
    );
  }
}

/** Runs client-first and reads the server-first-message. */
function scramStart(exchange: AuthExchange, client: ScramClient, gs2Header?: string): void {
  client.readServerFirst(replyOf(exchange.step(client.first(gs2Header))));
}

/** A role password as pg_authid keeps it for SCRAM-SHA-256. */
function scramSecret(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = sha256(hmac(salted, 'Client Key'));
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

describe('PasswordAuthenticator with scram-sha-256', () => {
  const authenticator = new PasswordAuthenticator('scram-sha-256', 'sekret');

  it('starts with AuthenticationSASL offering SCRAM-SHA-256 only', () => {
    const { code, data } = authRequest(authenticator.exchange('alice').start());
    expect(code).toBe(10);
    expect(data).toEqual(Buffer.from('SCRAM-SHA-256\0\0'));
  });

  it('accepts the right password and answers with the server signature', () => {
    const exchange = authenticator.exchange('alice');
    exchange.start();
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    // The server extends the client's nonce and uses PostgreSQL's iteration count.
    expect(client.serverNonce.startsWith(client.nonce)).toBe(true);
    expect(client.serverNonce.length).toBeGreaterThan(client.nonce.length);
    expect(client.iterations).toBe(4096);
    expect(client.salt).toHaveLength(16);

    const { message, serverSignature } = client.final();
    const step = exchange.step(message);
    expect(step).toMatchObject({ done: true });
    const { code, data } = authRequest(replyOf(step));
    expect(code).toBe(12); // AuthenticationSASLFinal
    expect(data.toString('utf8')).toBe(`v=${serverSignature}`);
  });

  it('accepts a client that supports channel binding but does not use it (gs2 "y")', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret', 'alice');
    scramStart(exchange, client, 'y,,');
    // The c= attribute echoes the gs2 header: eSws is "y,,".
    expect(exchange.step(client.final().message)).toMatchObject({ done: true });
  });

  it('refuses a client-final-message whose c= is not the gs2 header it began with', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret', 'alice');
    scramStart(exchange, client, 'y,,');
    // "n,," here, after "y,," first: a downgrade PostgreSQL refuses too, whatever the proof.
    expect(exchange.step(client.final(client.serverNonce, 'biws').message)).toEqual({
      failed: 'SCRAM channel binding check failed',
    });
  });

  it('refuses a wrong password without a reply', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('wrong');
    scramStart(exchange, client);
    expect(exchange.step(client.final().message)).toEqual({ failed: 'password does not match' });
  });

  it('uses a fresh salt per authenticator and a fresh nonce per exchange', () => {
    const other = new PasswordAuthenticator('scram-sha-256', 'sekret');
    const first = new ScramClient('sekret');
    const second = new ScramClient('sekret');
    const third = new ScramClient('sekret');
    scramStart(authenticator.exchange('alice'), first);
    scramStart(authenticator.exchange('alice'), second);
    scramStart(other.exchange('alice'), third);
    expect(first.salt).toEqual(second.salt);
    expect(first.salt).not.toEqual(third.salt);
    expect(first.serverNonce.slice(first.nonce.length)).not.toBe(
      second.serverNonce.slice(second.nonce.length),
    );
  });

  it('refuses a client-first-message without a gs2 header', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    expect(exchange.step(client.first(''))).toEqual({ failed: 'malformed SCRAM client-first-message' });
  });

  it('refuses a client that asks for channel binding (gs2 "p=...")', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    expect(exchange.step(client.first('p=tls-server-end-point,,'))).toEqual({
      failed: 'malformed SCRAM client-first-message',
    });
  });

  it('refuses a client-first-message without a nonce', () => {
    const exchange = authenticator.exchange('alice');
    const message = body(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,'));
    expect(exchange.step(message)).toEqual({ failed: 'malformed SCRAM client-first-message' });
  });

  it('refuses another SASL mechanism by name', () => {
    const exchange = authenticator.exchange('alice');
    const message = body(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256-PLUS', 'p=x,,n=,r=abc'));
    expect(exchange.step(message)).toEqual({ failed: 'unsupported SASL mechanism SCRAM-SHA-256-PLUS' });
  });

  it('refuses a client-final-message whose nonce is not the server nonce', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    // Even with a proof computed correctly for that nonce.
    const { message } = client.final(`${client.serverNonce}x`);
    expect(exchange.step(message)).toEqual({ failed: 'malformed SCRAM client-final-message' });
  });

  it('refuses a client-final-message that only echoes the client nonce', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    expect(exchange.step(client.final(client.nonce).message)).toEqual({
      failed: 'malformed SCRAM client-final-message',
    });
  });

  it('refuses a client-final-message without a proof', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    const message = body(serialize.sendSCRAMClientFinalMessage(`c=biws,r=${client.serverNonce}`));
    expect(exchange.step(message)).toEqual({ failed: 'malformed SCRAM client-final-message' });
  });

  it('refuses a proof that is not valid base64 or has the wrong length, without throwing', () => {
    for (const proof of ['!!!not*base64!!!', 'AAAA', 'A'.repeat(100)]) {
      const exchange = authenticator.exchange('alice');
      const client = new ScramClient('sekret');
      scramStart(exchange, client);
      expect(() => exchange.step(client.finalWithProof(proof))).not.toThrow();
    }
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    expect(exchange.step(client.finalWithProof('!!!not*base64!!!'))).toEqual({
      failed: 'password does not match',
    });
  });

  it('refuses a proof of the right length that is wrong', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    expect(exchange.step(client.finalWithProof(Buffer.alloc(32).toString('base64')))).toEqual({
      failed: 'password does not match',
    });
  });

  it('refuses any message after the exchange is over', () => {
    const exchange = authenticator.exchange('alice');
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    const { message } = client.final();
    expect(exchange.step(message)).toMatchObject({ done: true });
    expect(exchange.step(message)).toEqual({ failed: 'unexpected SASL message' });
  });

  it('reports a SASLInitialResponse without a NUL after the mechanism as a protocol violation', () => {
    const exchange = authenticator.exchange('alice');
    expect(() => exchange.step(Buffer.from('SCRAM-SHA-256'))).toThrow(ProtocolViolationError);
    expect(() => authenticator.exchange('alice').step(Buffer.from('SCRAM-SHA-256'))).toThrow(
      'invalid string in message',
    );
  });

  it("checks a role's stored SCRAM secret instead of the proxy password", () => {
    const stored = scramSecret('role-password', 1000);
    const exchange = authenticator.exchange('bob', stored);
    const client = new ScramClient('role-password');
    scramStart(exchange, client);
    expect(client.iterations).toBe(1000);
    expect(exchange.step(client.final().message)).toMatchObject({ done: true });

    const refused = authenticator.exchange('bob', stored);
    const proxyPassword = new ScramClient('sekret');
    scramStart(refused, proxyPassword);
    expect(refused.step(proxyPassword.final().message)).toEqual({ failed: 'password does not match' });
  });

  it('falls back to the proxy password when the stored password is not a SCRAM secret', () => {
    const exchange = authenticator.exchange('bob', `md5${md5Hex('otherbob')}`);
    const client = new ScramClient('sekret');
    scramStart(exchange, client);
    expect(exchange.step(client.final().message)).toMatchObject({ done: true });
  });
});

describe('PasswordAuthenticator with md5', () => {
  const authenticator = new PasswordAuthenticator('md5', 'sekret');

  /** What a client sends: md5(md5(password + user) + salt), prefixed "md5". */
  const md5Answer = (password: string, user: string, salt: Buffer) =>
    `md5${md5Hex(Buffer.concat([Buffer.from(md5Hex(password + user)), salt]))}`;

  function begin(user: string, stored: string | null = null): { exchange: AuthExchange; salt: Buffer } {
    const exchange = authenticator.exchange(user, stored);
    const { code, data } = authRequest(exchange.start());
    expect(code).toBe(5); // AuthenticationMD5Password
    expect(data).toHaveLength(4);
    return { exchange, salt: data };
  }

  it('accepts the hashed password salted with the salt it sent', () => {
    const { exchange, salt } = begin('alice');
    expect(exchange.step(body(serialize.password(md5Answer('sekret', 'alice', salt))))).toEqual({
      done: true,
    });
  });

  it('refuses a wrong password', () => {
    const { exchange, salt } = begin('alice');
    expect(exchange.step(body(serialize.password(md5Answer('wrong', 'alice', salt))))).toEqual({
      failed: 'password does not match',
    });
  });

  it('refuses the right password hashed for another user', () => {
    const { exchange, salt } = begin('alice');
    expect(exchange.step(body(serialize.password(md5Answer('sekret', 'bob', salt))))).toEqual({
      failed: 'password does not match',
    });
  });

  it('refuses an answer salted with another salt, and the password in clear', () => {
    const { exchange, salt } = begin('alice');
    const otherSalt = Buffer.from(salt.map((byte) => byte ^ 0xff));
    expect(exchange.step(body(serialize.password(md5Answer('sekret', 'alice', otherSalt))))).toEqual({
      failed: 'password does not match',
    });
    expect(begin('alice').exchange.step(body(serialize.password('sekret')))).toEqual({
      failed: 'password does not match',
    });
  });

  it('refuses an answer without its NUL terminator without throwing', () => {
    const { exchange, salt } = begin('alice');
    expect(exchange.step(Buffer.from(md5Answer('sekret', 'alice', salt)))).toEqual({
      failed: 'password does not match',
    });
    expect(begin('alice').exchange.step(Buffer.alloc(0))).toEqual({ failed: 'password does not match' });
  });

  it("checks a role's stored md5 hash instead of the proxy password", () => {
    const stored = `md5${md5Hex('role-passwordbob')}`;
    const { exchange, salt } = begin('bob', stored);
    expect(exchange.step(body(serialize.password(md5Answer('role-password', 'bob', salt))))).toEqual({
      done: true,
    });
    const again = begin('bob', stored);
    expect(again.exchange.step(body(serialize.password(md5Answer('sekret', 'bob', again.salt))))).toEqual({
      failed: 'password does not match',
    });
  });

  it('falls back to the proxy password when the stored password is a SCRAM secret', () => {
    const { exchange, salt } = begin('bob', scramSecret('role-password'));
    expect(exchange.step(body(serialize.password(md5Answer('sekret', 'bob', salt))))).toEqual({ done: true });
  });

  it('sends a fresh salt for each exchange', () => {
    const salts = new Set(Array.from({ length: 8 }, () => begin('alice').salt.toString('hex')));
    expect(salts.size).toBeGreaterThan(1);
  });
});
