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
  readonly ready: Promise<HostedDatabaseInfo>;
  private readonly worker: Worker;
  private recycled: ((ok: boolean) => void) | null = null;
  private exited = false;

  private readonly interrupts = shareInterrupts(false);

  constructor(data: Omit<HostWorkerData, 'interrupts'>) {
    this.worker = startWorker(
      workerEntry,
      { ...data, interrupts: this.interrupts.control } satisfies HostWorkerData,
      `pglite-oxide ${path.basename(data.template.pgdata)}`,
    );
    this.worker.unref();
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (message: WorkerToMain) => {
        if (message.type === 'ready') resolve(message.info);
        else if (message.type === 'failed')
          reject(new EngineHostError(`a test database could not start: ${message.reason}`));
        else if (message.type === 'recycled') {
          const done = this.recycled;
          this.recycled = null;
          done?.(message.ok);
        }
      });
      this.worker.once('error', (error) =>
        reject(new EngineHostError(`a test database crashed: ${error.message}`)),
      );
      this.worker.once('exit', (code) => {
        this.exited = true;
        this.recycled?.(false);
        reject(new EngineHostError(`a test database's thread exited (code ${code}) before it was ready`));
      });
    });
    this.ready.catch(() => {});
  }

  /**
   * Asks the statement the database's engine runs now to stop with 57014: one a test left running
   * holds the database's thread, and with it the test file's next control call.
   */
  cancelRunning(): void {
    EngineInterrupts.cancelRunning(this.interrupts.control);
  }

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
