import { type ChildProcess, spawn } from 'node:child_process';
import { signalNumber } from './shutdown.js';

// The command `run` starts is forked by a small Node process started before the engine: the
// first fork of a process holding a started engine (~300 MB) costs ~0.3 s here, a fork of a
// fresh one ~10 ms. The launcher waits for the database's environment, then runs the command.
const LAUNCHER = `
const { spawn } = require('node:child_process');
process.once('message', ({ command, env }) => {
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.once('error', (error) => process.send({ error: error.message }, () => process.exit(0)));
  child.once('exit', (code, signal) => process.send({ code, signal }, () => process.exit(0)));
});
`;

type Outcome = { code: number | null; signal: NodeJS.Signals | null } | { error: string };

export class Launcher {
  private readonly process: ChildProcess;
  private readonly outcome: Promise<Outcome | null>;

  constructor(private readonly command: string[]) {
    this.process = spawn(process.execPath, ['-e', LAUNCHER], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    });
    this.outcome = new Promise((resolve) => {
      this.process.once('message', (message: Outcome) => resolve(message));
      this.process.once('exit', () => resolve(null));
      this.process.once('error', () => resolve(null));
    });
  }

  /** Runs the command with `env` added; resolves with its exit status. */
  async run(env: Record<string, string>): Promise<number> {
    this.process.send({ command: this.command, env });
    const outcome = await this.outcome;
    // The launcher exits by itself once it has reported; this process need not wait for that.
    if (this.process.connected) this.process.disconnect();
    this.process.unref();
    if (!outcome) return 1;
    if ('error' in outcome) {
      console.error(`pglite-oxide: cannot run ${this.command[0]}: ${outcome.error}`);
      return 127;
    }
    return outcome.signal ? 128 + signalNumber(outcome.signal) : (outcome.code ?? 1);
  }

  kill(signal: NodeJS.Signals): void {
    this.process.kill(signal);
  }

  /** Ends the launcher without running anything (the database could not start). */
  cancel(): void {
    this.process.kill('SIGKILL');
  }
}
