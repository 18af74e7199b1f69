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

export function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : signal === 'SIGHUP' ? 1 : 9;
}
