import {
  clientTimeouts,
  startEphemeralDatabase,
  type TemplateFlags,
  type TimeoutFlags,
} from './ephemeral.js';
import { Launcher } from './launcher.js';
import { onShutdown } from './shutdown.js';

/** Runs the command against an ephemeral database and exits with the command's status. */
export async function runCommand(command: string[], flags: TemplateFlags & TimeoutFlags): Promise<void> {
  const launcher = new Launcher(command);
  let database: Awaited<ReturnType<typeof startEphemeralDatabase>>;
  try {
    database = await startEphemeralDatabase(flags, clientTimeouts(flags));
  } catch (error) {
    launcher.cancel();
    throw error;
  }
  let status: number;
  try {
    // Ctrl+C reaches the command through the terminal; a signal sent to this process alone is passed on.
    // Kept to the end: on a busy machine the terminal's SIGINT can reach this process after the
    // command it ended has been reported, and its default action would kill the cleanup.
    onShutdown((signal) => launcher.kill(signal));
    status = await launcher.run(database.env);
  } finally {
    await database.close();
  }
  process.exitCode = status;
}
