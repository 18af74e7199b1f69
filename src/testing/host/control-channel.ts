import net from 'node:net';
import { EngineHostError, PgliteOxideError, type PgliteOxideErrorCode } from '../../errors.js';
import type { ControlCall } from './messages.js';

// Test files talk to the engine host over a local socket, one JSON object a line: test files
// may be other processes (Vitest forks, Jest workers), and a line protocol keeps a control call
// to ~0.1 ms, well under the per-test isolation budget.

/** The calls a control socket answers, by name (see messages.ts). */
// biome-ignore lint/suspicious/noExplicitAny: each socket's own interface narrows these.
export type ControlCalls = { [op: string]: ControlCall<any, any> };

/** One function a call, answering it. */
export type ControlHandlers<Calls extends ControlCalls> = {
  [Op in keyof Calls]: (
    args: Calls[Op]['args'],
    connection: ControlConnection,
  ) => Promise<Calls[Op]['result']>;
};

/** A call's arguments, optional when it takes none. */
type ArgsOf<Call extends ControlCall<unknown, unknown>> =
  Record<string, never> extends Call['args'] ? [args?: Call['args']] : [args: Call['args']];

interface Request {
  id: number;
  op: string;
  args: unknown;
}

type Response =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; code: string; message: string } };

/** One connected caller; `onClose` hooks run when it goes, however it goes. */
export class ControlConnection {
  private readonly closeHooks: Array<() => void> = [];

  constructor(readonly socket: net.Socket) {
    socket.once('close', () => {
      for (const hook of this.closeHooks.splice(0)) hook();
    });
  }

  onClose(hook: () => void): void {
    if (this.socket.destroyed) hook();
    else this.closeHooks.push(hook);
  }
}

export interface ControlServer {
  /** `host:port` to give to `ControlClient.connect`. */
  readonly address: string;
  close(): Promise<void>;
}

export async function serveControl<Calls extends ControlCalls>(
  handlers: ControlHandlers<Calls>,
  listenPort = 0,
): Promise<ControlServer> {
  const answer = async (request: Request, connection: ControlConnection): Promise<unknown> => {
    if (!Object.hasOwn(handlers, request.op))
      throw new EngineHostError(`unknown engine host call '${request.op}'`);
    return handlers[request.op as keyof Calls](request.args ?? {}, connection);
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const connection = new ControlConnection(socket);
    readLines(socket, (line) => {
      const request = JSON.parse(line) as Request;
      answer(request, connection).then(
        (value) => reply(socket, { id: request.id, ok: true, value: value ?? null }),
        (error: unknown) => reply(socket, { id: request.id, ok: false, error: errorFields(error) }),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Loopback only: whoever reaches this socket can run SQL on every hosted database.
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  server.unref();
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The caller's side: calls are answered in order of arrival, matched by id. */
export class ControlClient<Calls extends ControlCalls> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    readLines(socket, (line) => {
      const response = JSON.parse(line) as Response;
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      this.pending.delete(response.id);
      if (response.ok) waiter.resolve(response.value);
      else waiter.reject(remoteError(response.error));
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      this.closedError = new EngineHostError('the pglite-oxide engine host went away');
      for (const waiter of this.pending.values()) waiter.reject(this.closedError);
      this.pending.clear();
    });
  }

  static connect<Calls extends ControlCalls>(address: string): Promise<ControlClient<Calls>> {
    const at = address.lastIndexOf(':');
    const socket = net.connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ControlClient<Calls>(socket));
      });
      socket.once('error', (error) =>
        reject(
          new EngineHostError(`cannot reach the pglite-oxide engine host at ${address}: ${error.message}`),
        ),
      );
    });
  }

  call<Op extends keyof Calls & string>(op: Op, ...[args]: ArgsOf<Calls[Op]>): Promise<Calls[Op]['result']> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ id, op, args: args ?? {} } satisfies Request)}\n`);
    });
  }

  /** Lets the process exit while this connection is open (the host reclaims what it leased). */
  unref(): void {
    this.socket.unref();
  }

  close(): void {
    this.socket.end();
  }
}

function readLines(socket: net.Socket, onLine: (line: string) => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let end = buffered.indexOf('\n');
    while (end >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (line) onLine(line);
      end = buffered.indexOf('\n');
    }
  });
}

function reply(socket: net.Socket, response: Response): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
}

function errorFields(error: unknown): { name: string; code: string; message: string } {
  if (error instanceof PgliteOxideError)
    return { name: error.name, code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { name: 'EngineHostError', code: 'ENGINE_HOST_FAILED', message };
}

/** An error raised in the host, raised again in the caller with the same class name and code. */
function remoteError(fields: { name: string; code: string; message: string }): PgliteOxideError {
  const error = new PgliteOxideError(fields.code as PgliteOxideErrorCode, fields.message);
  error.name = fields.name;
  return error;
}
