import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const SRC_INDEX = path.resolve('src/index.ts');

/**
 * Starts a separate Node process running `body` (an async function body with `ox` bound to the
 * package source), as a second user process would. Its stdout lines are collected.
 */
export function spawnPackageScript(
  body: string,
  env: NodeJS.ProcessEnv = {},
): ChildProcess & { lines: string[] } {
  const script = `import * as ox from ${JSON.stringify(SRC_INDEX)};\n(async () => {\n${body}\n})().catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { lines: string[] };
  child.lines = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    child.lines.push(...parts);
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) child.lines.push(`exit ${code}: ${stderr}`);
  });
  return child;
}

export function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Resolves when the child prints a line equal to `line`. */
export function lineFrom(child: ChildProcess & { lines: string[] }, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (child.lines.includes(line)) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`child exited before printing ${line}: ${child.lines.join('\n')}`));
      }
    };
    const timer = setInterval(check, 5);
  });
}
