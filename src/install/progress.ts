/** A step of slow first-time work, reported so a person waiting knows what is happening. */
export interface ProgressEvent {
  phase: 'start' | 'done';
  task: string;
  elapsedMs: number;
}

export type ProgressListener = (event: ProgressEvent) => void;

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Runs a slow task and reports it: to `listener` when given, otherwise as a spinner with the
 * elapsed time on stderr when stderr is a terminal (and silently in logs and CI).
 */
export async function withProgress<T>(
  task: string,
  listener: ProgressListener | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const started = Date.now();
  const stream = process.stderr;
  const spinner =
    !listener && stream.isTTY
      ? setInterval(() => {
          const seconds = ((Date.now() - started) / 1000).toFixed(1);
          stream.write(
            `\r${FRAMES[Math.floor((Date.now() - started) / 80) % FRAMES.length]} ${task} ${seconds}s`,
          );
        }, 80)
      : undefined;
  spinner?.unref();
  listener?.({ phase: 'start', task, elapsedMs: 0 });
  try {
    return await fn();
  } finally {
    const elapsedMs = Date.now() - started;
    if (spinner) {
      clearInterval(spinner);
      stream.write(`\r✔ ${task} (${(elapsedMs / 1000).toFixed(1)}s)\x1b[K\n`);
    }
    listener?.({ phase: 'done', task, elapsedMs });
  }
}
