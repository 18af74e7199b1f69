// The engine in a worker thread of its own, so that a long statement holds only the clients that
// wait for the engine: the thread that accepts connections, answers handshakes and
// CancelRequest, and handles signals stays free. Wire calls come through the shared channel;
// the rest (COPY data, close) as messages.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { EngineCrashedError, errorMessage } from '../errors.js';
import { PglitePaths } from '../install/paths.js';
import { ClientTable } from './client-table.js';
import { adoptClusterImage } from './cluster-image.js';
import { InteractiveRuntime } from './interactive-runtime.js';
import { openMemoryEngine } from './memory-engine.js';
import type { EngineThreadData, FromEngineThread, ToEngineThread } from './threaded-engine.js';
import { adoptCompiledModule } from './wasm-modules.js';
import { REPLY, REPLY_POSTED, REQUEST, WireChannel } from './wire-channel.js';

/** How long the thread keeps looking for the next request before it sleeps. */
const IDLE_SPIN_MS = 0.2;
/** How long it sleeps at a time before it looks at its messages. */
const SLEEP_SLICE_MS = 20;

const data = workerData as EngineThreadData;
if (!parentPort) throw new Error('the engine thread must run in a worker thread');
const port = parentPort;
const send = (message: FromEngineThread) => port.postMessage(message);
const channel = new WireChannel(data.channel);

async function start(): Promise<InteractiveRuntime> {
  const { spec } = data;
  const paths = new PglitePaths(spec.runtimeRoot, spec.pgdata);
  adoptCompiledModule(`${paths.binDir}/pglite.wasm`, data.pgliteWasm);
  // The files the engine starts from: the template's, or those a replaced engine left.
  if (data.image) adoptClusterImage(spec.pgdata, data.image);
  if (spec.kind === 'disk') {
    return InteractiveRuntime.start(paths, {
      env: spec.env,
      settings: spec.settings,
      interrupts: { control: data.interrupts, numberedByCaller: true },
      oidRange: spec.oidRange,
    });
  }
  return InteractiveRuntime.start(paths, {
    env: spec.env,
    settings: spec.settings,
    engineFactory: (engineSpec) =>
      openMemoryEngine({
        clients: engineSpec.clients,
        mirror: data.mirror,
        templatePgdata: spec.pgdata,
        runtimeRoot: spec.runtimeRoot,
        env: spec.env,
        settings: spec.settings,
        interrupts: { control: data.interrupts, numberedByCaller: true },
      }),
  });
}

/** Set by a close: the call loop ends, so the thread can exit once the engine is closed. */
let closing = false;

async function serveCalls(runtime: InteractiveRuntime): Promise<void> {
  for (;;) {
    await nextRequest();
    // A busy thread seldom yields to its event loop: what was sent before this request (the
    // proxy's client table, which the call may need) is handled first.
    for (let queued = receiveMessageOnPort(port); queued; queued = receiveMessageOnPort(port))
      onMessage(runtime, queued.message as ToEngineThread);
    if (closing) return;
    try {
      const bytes = channel.take();
      const as = channel.requestClient;
      const output = runtime.execWireNow(bytes, as) ?? (await runtime.execInteractive(bytes, as));
      if (channel.fits(output)) {
        channel.put(output, REPLY);
      } else {
        send({ type: 'reply', bytes: output });
        channel.signal(REPLY_POSTED);
      }
    } catch (error) {
      channel.fail({ message: errorMessage(error), crashed: error instanceof EngineCrashedError });
    }
    if (channel.callerAsleep()) send({ type: 'wake' });
  }
}

/** Waits for the next request: spins a little, then sleeps; messages are handled between sleeps. */
async function nextRequest(): Promise<void> {
  // The caller takes the reply and sends the next request within a round trip: keep looking
  // until a request comes, not just until the reply is taken.
  let state = channel.spinUntil(REQUEST, IDLE_SPIN_MS);
  while (state !== REQUEST && !closing) {
    const before = state;
    state = channel.sleepWhile(before, SLEEP_SLICE_MS);
    // Only a sleep that ran its course yields to the event loop: a request may follow a change at once.
    if (state === before)
      state = await new Promise<number>((resolve) => setImmediate(() => resolve(channel.state)));
  }
}

function onMessage(runtime: InteractiveRuntime, message: ToEngineThread): void {
  if (message.type === 'exec') {
    const blob = message.blob;
    const call = blob
      ? runtime.execWithBlob(message.bytes, new Blob([blob as Uint8Array<ArrayBuffer>]), message.as)
      : runtime.execInteractive(message.bytes, message.as);
    call.then(
      (bytes) => send({ type: 'execReply', id: message.id, bytes }),
      (error: unknown) =>
        send({
          type: 'execReply',
          id: message.id,
          error: { message: errorMessage(error), crashed: error instanceof EngineCrashedError },
        }),
    );
  } else if (message.type === 'clients') {
    runtime.clients.table = new ClientTable(message.buffer);
  } else if (message.type === 'close') {
    closing = true;
    void runtime.close().finally(() => port.close());
  }
}

async function main(): Promise<void> {
  const runtime = await start();
  if (data.clients) runtime.clients.table = new ClientTable(data.clients);
  port.on('message', (message: ToEngineThread) => onMessage(runtime, message));
  send({ type: 'ready', enforcesLoginRoles: await runtime.enforcesLoginRoles() });
  await serveCalls(runtime);
}

main().catch((error: unknown) => send({ type: 'failed', reason: errorMessage(error) }));
