import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { EngineHostError } from '../../errors.js';
import { EngineInterrupts, shareInterrupts } from '../../runtime/engine-interrupts.js';
import { entryBeside, startWorker } from '../../runtime/worker-thread.js';
import type { HostWorkerData } from './host-worker.js';
import type { HostedDatabaseInfo, MainToWorker, WorkerToMain } from './messages.js';

const workerEntry = entryBeside(import.meta.url, 'host-worker');

/** A database the host runs in a worker thread of its own; the host decides who leases it. */
export class HostedDatabase {
  ready: Promise<HostedDatabaseInfo>;
  private worker!: Worker;
  private recycled: ((ok: boolean) => void) | null = null;
  private exited = false;
  private readonly interrupts = shareInterrupts(false);

  constructor(private readonly data: Omit<HostWorkerData, 'interrupts' | 'ports'>) {
    this.ready = this.start();
  }

  private start(ports?: HostWorkerData['ports']): Promise<HostedDatabaseInfo> {
    const worker = startWorker(
      workerEntry,
      { ...this.data, interrupts: this.interrupts.control, ports } satisfies HostWorkerData,
      `pglite-oxide ${path.basename(this.data.template.pgdata)}`,
    );
    this.worker = worker;
    this.exited = false;
    worker.unref();
    const ready = new Promise<HostedDatabaseInfo>((resolve, reject) => {
      worker.on('message', (message: WorkerToMain) => {
        if (message.type === 'ready') resolve(message.info);
        else if (message.type === 'failed')
          reject(new EngineHostError(`a test database could not start: ${message.reason}`));
        else if (message.type === 'recycled') {
          const done = this.recycled;
          this.recycled = null;
          done?.(message.ok);
        }
      });
      worker.once('error', (error) =>
        reject(new EngineHostError(`a test database crashed: ${error.message}`)),
      );
      worker.once('exit', (code) => {
        if (this.worker !== worker) return;
        this.exited = true;
        this.recycled?.(false);
        reject(new EngineHostError(`a test database's thread exited (code ${code}) before it was ready`));
      });
    });
    ready.catch(() => {});
    return ready;
  }

  /**
   * Asks the statement the database's engine runs now to stop with 57014: one a test left running
   * holds the database's thread, and with it the test file's next control call. Returns the
   * number of the call asked to stop, or null when the engine was between calls.
   */
  cancelRunning(): number | null {
    const running = EngineInterrupts.runningCall(this.interrupts.control);
    if (running !== null) EngineInterrupts.cancelRunning(this.interrupts.control);
    return running;
  }

  /** Whether call `call` still runs. */
  stillRunning(call: number): boolean {
    return EngineInterrupts.runningCall(this.interrupts.control) === call;
  }

  /**
   * Ends the database's thread, with the statement it could not stop, and starts a new database
   * from the template on the same ports: the test file's clients reconnect to it as they are.
   * Callers at the same time share one replacement.
   */
  replace(): Promise<void> {
    this.replacing ??= (async () => {
      const info = await this.ready;
      const control = Number(info.control.slice(info.control.lastIndexOf(':') + 1));
      const proxy = Number(new URL(info.connectionString).port);
      await this.worker.terminate();
      this.ready = this.start({ proxy, control });
      await this.ready;
    })().finally(() => {
      this.replacing = null;
    });
    return this.replacing;
  }

  /** The replacement under way, if any. */
  replacing: Promise<void> | null = null;

  /** Puts the database back to the template state; false when it cannot be reused. */
  recycle(): Promise<boolean> {
    if (this.exited) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.recycled = resolve;
      this.post({ type: 'recycle' });
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'close' });
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private post(message: MainToWorker): void {
    this.worker.postMessage(message);
  }
}
