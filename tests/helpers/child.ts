import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach } from 'vitest';

const SRC_INDEX = path.resolve('src/index.ts');

const running = new Set<ChildProcess>();
const groups = new Set<number>();

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group has ended already
  }
}

/** Keeps `child` for the end of the current test: whatever still runs then is killed. */
export function killAfterTest<T extends ChildProcess>(child: T): T {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

// A test that fails or times out halfway must not leave its processes running.
afterEach(() => {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
  for (const pid of groups) killGroup(pid);
  groups.clear();
});

export interface CommandRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout then stderr, for assertion messages. */
  output: string;
  timedOut: boolean;
}

/**
 * Runs a command to its end in a process group of its own (npm, and the test runner npm starts,
 * and that runner's workers). When `timeoutMs` passes, or the test ends first, the whole group
 * is killed: killing only npm would leave the runners under it running.
 */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<CommandRun> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  groups.add(pid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(pid);
  }, options.timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      groups.delete(pid);
      // Workers a runner left behind go with the group.
      killGroup(pid);
      resolve({ status, stdout, stderr, output: stdout + stderr, timedOut });
    });
  });
}

/**
 * Starts a separate Node process running `body` (an async function body with `ox` bound to the
 * package source), as a second user process would. Its stdout lines are collected; it is killed
 * at the end of the test if still running.
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
  killAfterTest(child);
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

/** Resolves when the child prints a line equal to `line`; rejects when it exits or time runs out. */
export function lineFrom(
  child: ChildProcess & { lines: string[] },
  line: string,
  timeoutMs = 30_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (child.lines.includes(line)) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null || child.signalCode !== null) {
        clearInterval(timer);
        reject(new Error(`child exited before printing ${line}: ${child.lines.join('\n')}`));
      } else if (Date.now() > deadline) {
        clearInterval(timer);
        reject(new Error(`child did not print ${line} within ${timeoutMs} ms: ${child.lines.join('\n')}`));
      }
    };
    const timer = setInterval(check, 5);
  });
}
