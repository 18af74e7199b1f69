import { ProtocolViolationError } from '../../errors.js';
import {
  AUTHENTICATION_OK,
  backendKeyData,
  type ErrorFields,
  negotiateProtocolVersion,
  parameterStatus,
  readyForQuery,
} from '../../protocol/backend-writer.js';
import { startupSettings } from './startup-settings.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/** What a client's first packet asks for. */
export type StartupRequest =
  /** SSLRequest or GSSENCRequest: answered 'N', and the client goes on in the clear. */
  | { kind: 'encryption' }
  /** CancelRequest: the connection closes after it; a short one names no backend. */
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'cancel'; processId: null; secretKey: null }
  /** A startup PostgreSQL refuses with a FATAL error. */
  | { kind: 'refused'; error: Pick<ErrorFields, 'code' | 'message'> }
  | ({ kind: 'connect' } & ClientStartup);

/** A client's StartupMessage, as PostgreSQL reads it. */
export interface ClientStartup {
  user: string;
  /** The database it asked for; its user name when it named none. */
  database: string;
  /** The settings it asked for (lower-case names), from parameters and `options`. */
  settings: Map<string, string>;
  /** `application_name`, or `fallback_application_name` when it gave none. */
  applicationName: string;
  /** NegotiateProtocolVersion to send first, for a 3.x client newer than 3.0 or one with `_pq_.` options. */
  negotiation: Buffer | null;
}

/**
 * Reads a client's first packet (its length word already removed). Throws ProtocolViolationError
 * when the packet is broken: PostgreSQL then closes the connection without a word.
 */
export function readStartupPacket(packet: Buffer): StartupRequest {
  const code = packet.readInt32BE(0);
  if (code === SSL_REQUEST || code === GSSENC_REQUEST) return { kind: 'encryption' };
  if (code === CANCEL_REQUEST) {
    return packet.length >= 12
      ? { kind: 'cancel', processId: packet.readInt32BE(4), secretKey: packet.readInt32BE(8) }
      : { kind: 'cancel', processId: null, secretKey: null };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    return refused('0A000', `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
  }
  const params = startupParameters(packet);
  const user = params.get('user') ?? '';
  if (!user) return refused('28000', 'no PostgreSQL user name specified in startup packet');
  const replication = params.get('replication');
  if (replication && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
    return refused('0A000', 'replication connections are not supported by pglite-oxide');
  }
  // As PostgreSQL 17: a newer 3.x client, or one asking for protocol options, is told what this
  // server speaks and goes on with 3.0.
  const options = [...params.keys()].filter((name) => name.startsWith('_pq_.'));
  return {
    kind: 'connect',
    user,
    database: params.get('database') || user,
    settings: startupSettings(params),
    applicationName: params.get('application_name') || params.get('fallback_application_name') || '',
    negotiation: minor > 0 || options.length > 0 ? negotiateProtocolVersion(0, options) : null,
  };
}

/**
 * What a server sends once a client is in: AuthenticationOk, the server's settings as the client
 * sees them (its own values where it asked for some), its cancel key, and ReadyForQuery.
 */
export function welcomeMessages(
  serverSettings: ReadonlyMap<string, string>,
  own: (name: string) => string | undefined,
  processId: number,
  secretKey: number,
): Buffer {
  const parts: Buffer[] = [AUTHENTICATION_OK];
  for (const [name, value] of serverSettings) parts.push(parameterStatus(name, own(name) ?? value));
  parts.push(backendKeyData(processId, secretKey), readyForQuery('I'));
  return Buffer.concat(parts);
}

function refused(code: string, message: string): StartupRequest {
  return { kind: 'refused', error: { code, message } };
}

function startupParameters(packet: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let offset = 4;
  while (offset < packet.length && packet[offset] !== 0) {
    const nameEnd = packet.indexOf(0, offset);
    if (nameEnd < 0) throw new ProtocolViolationError('invalid startup packet layout');
    const valueEnd = packet.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new ProtocolViolationError('invalid startup packet layout');
    params.set(packet.toString('utf8', offset, nameEnd), packet.toString('utf8', nameEnd + 1, valueEnd));
    offset = valueEnd + 1;
  }
  return params;
}
