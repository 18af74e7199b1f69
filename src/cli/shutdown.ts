import os from 'node:os';
/**
 * Runs `stop` once on the first SIGINT or SIGTERM (a second one exits at once), so a server or a
 * child command ends cleanly on Ctrl+C.
 */
export function onShutdown(stop: (signal: NodeJS.Signals) => void | Promise<void>): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(128 + signalNumber(signal));
    stopping = true;
    void stop(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** The number of `signal` (SIGSEGV 11, SIGABRT 6, ...), for the shell's 128+n exit status. */
export function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 9;
}
