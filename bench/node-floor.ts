import net from 'node:net';
import {
  AUTHENTICATION_OK,
  backendKeyData,
  ENCRYPTION_REFUSED,
  parameterStatus,
  readyForQuery,
} from '../src/protocol/backend-writer.js';
import { FrontendReader } from '../src/protocol/frontend-reader.js';

// The floor for any PostgreSQL server written in Node on this machine: a plain net server that
// answers every Query and every Sync with bytes the engine gave once, and never calls the engine.
// What it costs per round trip is Node's socket I/O and nothing else, so a proxy can approach
// this column but not pass it.

export interface CannedReplies {
  /** Sent for each simple Query. */
  query: Uint8Array;
  /** Sent for each Sync, the end of an extended batch. */
  sync: Uint8Array;
}

export interface NodeFloorServer {
  url: string;
  close(): Promise<void>;
}

const QUERY = 0x51;
const SYNC = 0x53;
const TERMINATE = 0x58;
const SSL_REQUEST = 80877103;

export async function startNodeFloor(replies: CannedReplies): Promise<NodeFloorServer> {
  const admitted = Buffer.concat([
    AUTHENTICATION_OK,
    parameterStatus('server_version', '17.5'),
    parameterStatus('client_encoding', 'UTF8'),
    parameterStatus('standard_conforming_strings', 'on'),
    parameterStatus('integer_datetimes', 'on'),
    backendKeyData(1, 1),
    readyForQuery('I'),
  ]);
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const reader = new FrontendReader();
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      while (!started) {
        const packet = reader.nextStartup();
        if (!packet) return;
        if (packet.readInt32BE(0) === SSL_REQUEST) {
          socket.write(ENCRYPTION_REFUSED);
        } else {
          started = true;
          socket.write(admitted);
        }
      }
      for (let message = reader.next(); message; message = reader.next()) {
        if (message.type === QUERY) socket.write(replies.query);
        else if (message.type === SYNC) socket.write(replies.sync);
        else if (message.type === TERMINATE) socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
