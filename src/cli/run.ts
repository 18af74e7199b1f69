import { spawn } from 'node:child_process';
import { startEphemeralDatabase, type TemplateFlags } from './ephemeral.js';
import { onShutdown, signalNumber } from './shutdown.js';

/** Runs the command against an ephemeral database and exits with the command's status. */
export async function runCommand(command: string[], flags: TemplateFlags): Promise<void> {
  const database = await startEphemeralDatabase(flags);
  let status: number;
  try {
    const child = spawn(command[0]!, command.slice(1), {
      stdio: 'inherit',
      env: { ...process.env, ...database.env },
    });
    // Ctrl+C reaches the child through the terminal; a signal sent to this process alone is passed on.
    const stopForwarding = onShutdown((signal) => {
      child.kill(signal);
    });
    status = await new Promise<number>((resolve) => {
      child.once('error', (error) => {
        console.error(`pglite-oxide: cannot run ${command[0]}: ${error.message}`);
        resolve(127);
      });
      child.once('exit', (code, signal) => resolve(signal ? 128 + signalNumber(signal) : (code ?? 1)));
    });
    stopForwarding();
  } finally {
    await database.close();
  }
  process.exitCode = status;
}
