import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  authenticationMd5Password,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
} from '../../protocol/backend-writer.js';
import { cstringEnd } from '../../protocol/extended-messages.js';

export type AuthMethod = 'scram-sha-256' | 'md5';

/** The outcome of one password-message step. */
export type AuthStep = { reply: Buffer } | { done: true; reply?: Buffer } | { failed: string };

/** One client's password exchange; `start` gives the first request, `step` reads each answer. */
export interface AuthExchange {
  start(): Buffer;
  step(body: Buffer): AuthStep;
}

const SCRAM_ITERATIONS = 4096;

/** What a SCRAM-SHA-256 exchange checks a client against (as pg_authid stores it). */
interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/**
 * Server side of password authentication: the password given to the proxy, or a role's own
 * password when the database has one for it.
 */
export class PasswordAuthenticator {
  private readonly verifier: ScramVerifier;

  constructor(
    readonly method: AuthMethod,
    private readonly password: string,
  ) {
    // Derived once: PBKDF2 is deliberately slow and the password does not change.
    const salt = randomBytes(16);
    const salted = pbkdf2Sync(password.normalize('NFKC'), salt, SCRAM_ITERATIONS, 32, 'sha256');
    this.verifier = {
      iterations: SCRAM_ITERATIONS,
      salt,
      storedKey: sha256(hmac(salted, 'Client Key')),
      serverKey: hmac(salted, 'Server Key'),
    };
  }

  /**
   * An exchange with `user`. `stored` is the role's password as pg_authid has it: a SCRAM
   * verifier or an md5 hash is checked instead of the proxy's password when the method fits.
   */
  exchange(user: string, stored: string | null = null): AuthExchange {
    if (this.method === 'md5') {
      const hash = stored?.startsWith('md5') ? stored.slice(3) : md5Hex(this.password + user);
      return this.md5(hash);
    }
    return this.scram((stored && scramVerifier(stored)) || this.verifier);
  }

  private md5(hash: string): AuthExchange {
    const salt = randomBytes(4);
    const expected = `md5${md5Hex(Buffer.concat([Buffer.from(hash), salt]))}`;
    return {
      start: () => authenticationMd5Password(salt),
      step: (body) => {
        const answer = body.toString('utf8', 0, Math.max(0, body.indexOf(0)));
        return safeEqual(answer, expected) ? { done: true } : { failed: 'password does not match' };
      },
    };
  }

  private scram(verifier: ScramVerifier): AuthExchange {
    let gs2Header = '';
    let clientFirstBare = '';
    let serverFirst = '';
    let nonce = '';
    let stage: 'first' | 'final' | 'over' = 'first';
    return {
      start: () => authenticationSasl(['SCRAM-SHA-256']),
      step: (body) => {
        if (stage === 'first') {
          stage = 'final';
          const mechanismEnd = cstringEnd(body, 0);
          const mechanism = body.toString('utf8', 0, mechanismEnd - 1);
          if (mechanism !== 'SCRAM-SHA-256') return { failed: `unsupported SASL mechanism ${mechanism}` };
          const message = body.toString('utf8', mechanismEnd + 4);
          const match = /^([ny]),[^,]*,(n=[^,]*,r=([^,]+).*)$/.exec(message);
          if (!match) return { failed: 'malformed SCRAM client-first-message' };
          clientFirstBare = match[2]!;
          gs2Header = message.slice(0, message.length - clientFirstBare.length);
          nonce = match[3]! + randomBytes(18).toString('base64');
          serverFirst = `r=${nonce},s=${verifier.salt.toString('base64')},i=${verifier.iterations}`;
          return { reply: authenticationSaslContinue(serverFirst) };
        }
        if (stage !== 'final') return { failed: 'unexpected SASL message' };
        stage = 'over';
        const clientFinal = body.toString('utf8');
        const match = /^(c=([^,]*),r=([^,]*)(?:,[^,]*)*?),p=([^,]+)$/.exec(clientFinal);
        if (!match || match[3] !== nonce) return { failed: 'malformed SCRAM client-final-message' };
        // c= repeats the gs2 header: a client that said it could bind a channel cannot say "n" now.
        if (match[2] !== Buffer.from(gs2Header).toString('base64'))
          return { failed: 'SCRAM channel binding check failed' };
        const authMessage = `${clientFirstBare},${serverFirst},${match[1]}`;
        const proof = Buffer.from(match[4]!, 'base64');
        const signature = hmac(verifier.storedKey, authMessage);
        if (proof.length !== signature.length) return { failed: 'password does not match' };
        const clientKey = Buffer.alloc(proof.length);
        for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ signature[i]!;
        if (!timingSafeEqual(sha256(clientKey), verifier.storedKey))
          return { failed: 'password does not match' };
        const serverSignature = hmac(verifier.serverKey, authMessage).toString('base64');
        return { done: true, reply: authenticationSaslFinal(`v=${serverSignature}`) };
      },
    };
  }
}

/** `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as PostgreSQL stores it; null for anything else. */
function scramVerifier(stored: string): ScramVerifier | null {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(stored);
  if (!match) return null;
  return {
    iterations: Number(match[1]),
    salt: Buffer.from(match[2]!, 'base64'),
    storedKey: Buffer.from(match[3]!, 'base64'),
    serverKey: Buffer.from(match[4]!, 'base64'),
  };
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function md5Hex(data: string | Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
