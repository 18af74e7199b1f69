// One hosted database, in a worker thread of the engine host: its engine, its proxy, and a
// control socket test files call for per-test isolation and raw wire access. The main thread
// decides who uses it; this thread only serves it.

import path from 'node:path';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '../../errors.js';
import { PglitePaths } from '../../install/paths.js';
import type { ClientTimeouts } from '../../proxy/options.js';
import { adoptClusterImage, type ClusterImage } from '../../runtime/cluster-image.js';
import { adoptCompiledModule, adoptFsBundle } from '../../runtime/wasm-modules.js';
import type { Template } from '../../template/prepare-template.js';
import { startSuiteDatabase } from '../suite-database.js';
import { serveControl } from './control-channel.js';
import { keepDatabase } from './keep-database.js';
import type { DatabaseCalls, HostedDatabaseInfo, MainToWorker, WorkerToMain } from './messages.js';

export interface HostWorkerData {
  template: Template;
  pgliteWasm: WebAssembly.Module;
  image: ClusterImage;
  bundle: Blob;
  /** Shared with the host's main thread, which cancels a statement that outlives its test. */
  interrupts: Int32Array;
  timeouts?: ClientTimeouts;
  /** The ports of a database this one replaces, so that its test file's clients find it. */
  ports?: { proxy: number; control: number };
}

const data = workerData as HostWorkerData;
if (!parentPort) throw new Error('the engine host worker must run in a worker thread');
const port: MessagePort = parentPort;
const send = (message: WorkerToMain) => port.postMessage(message);

async function main(): Promise<void> {
  const { template } = data;
  const paths = new PglitePaths(template.runtimeRoot, template.pgdata);
  adoptCompiledModule(path.join(paths.binDir, 'pglite.wasm'), data.pgliteWasm);
  adoptClusterImage(template.pgdata, data.image);
  adoptFsBundle(path.join(paths.shareDir, 'pglite.data'), data.bundle);
  // Every hosted database can serve isolation 'transaction': each test file chooses its own.
  const suite = await startSuiteDatabase(template, {
    testTransactions: true,
    interrupts: { control: data.interrupts, numberedByCaller: false },
    timeouts: data.timeouts,
    port: data.ports?.proxy,
  });
  let testOpen = false;
  /** What the clients still connected at close are told: the file that left them, once known. */
  let closingReason: string | undefined;
  const control = await serveControl<DatabaseCalls>(
    {
      beginTest: async () => {
        await suite.proxy.beginTest();
        testOpen = true;
      },
      endTest: ({ outcome }) => {
        testOpen = false;
        return suite.proxy.endTest(outcome === 'commit' ? 'commit' : 'rollback');
      },
      reset: async () => {
        // A reset in the middle of a test under isolation 'transaction' starts its transaction again.
        const inTest = testOpen;
        if (inTest) await suite.proxy.endTest('rollback');
        const report = await suite.reset();
        if (inTest) await suite.proxy.beginTest();
        return report;
      },
      exec: async (args) => {
        const input = 'sql' in args ? args.sql : Buffer.from(args.bytes, 'base64');
        return Buffer.from(await suite.runtime.execInteractive(input)).toString('base64');
      },
      keep: ({ dir }) => keepDatabase(suite, dir),
      clientsLeft: async ({ graceMs, label }) => {
        // Clients that said goodbye may still be leaving: they get a moment.
        await suite.proxy.clientsGone(graceMs);
        closingReason =
          `${label} ended with this client still connected, and pglite-oxide closes ` +
          'such clients at the end of the run. End pools and clients in afterAll (pool.end(), client.end())';
        return suite.proxy.clients();
      },
    },
    data.ports?.control,
  );

  /** Back to the template state for the next file, or false when it cannot be trusted to be. */
  async function recycle(): Promise<boolean> {
    if (!(await suite.proxy.clientsGone(2_000))) return false;
    // Databases other than the file's own (template1, ones it created) start over too.
    await suite.proxy.closeDatabases();
    if (testOpen) {
      testOpen = false;
      await suite.proxy.endTest('rollback');
    }
    await suite.reset();
    return true;
  }

  port.on('message', (message: MainToWorker) => {
    if (message.type === 'recycle') {
      recycle().then(
        (ok) => send({ type: 'recycled', ok }),
        (error: unknown) => send({ type: 'recycled', ok: false, reason: errorMessage(error) }),
      );
    } else if (message.type === 'close') {
      void suite
        .close(closingReason)
        .catch(() => {})
        .then(() => control.close())
        .then(() => port.close());
    }
  });

  const info: HostedDatabaseInfo = {
    connectionString: suite.connectionString,
    env: suite.env,
    control: control.address,
  };
  send({ type: 'ready', info });
}

main().catch((error: unknown) => send({ type: 'failed', reason: errorMessage(error) }));
