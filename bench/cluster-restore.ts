// How to give a new root its cluster fastest: the candidates for keeping the initialized
// cluster, restored side by side from the same cached cluster in one run.
// Usage: npm run bench:cluster-restore [-- --runs N]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { cachedCluster } from '../src/index.js';
import { machine, median, printTable } from './support.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pglite-oxide-restore-'));
const cluster = await cachedCluster();
const tarFile = path.join(scratch, 'cluster.tar');
const tgzFile = path.join(scratch, 'cluster.tgz');
tar.c({ file: tarFile, cwd: cluster, sync: true, portable: true }, ['.']);
tar.c({ file: tgzFile, cwd: cluster, sync: true, portable: true, gzip: { level: 6 } }, ['.']);

const fileCount = (dir: string): number =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;

let n = 0;
const target = () => path.join(scratch, `out-${n++}`);
const into = (dir: string) => {
  fs.mkdirSync(dir);
  return dir;
};

const candidates: Array<{ name: string; stored: number; restore: () => Promise<unknown> | unknown }> = [
  {
    name: 'directory, fs.cpSync (chosen)',
    stored: 0,
    restore: () => fs.cpSync(cluster, target(), { recursive: true }),
  },
  {
    name: 'directory, fs.promises.cp',
    stored: 0,
    restore: () => fs.promises.cp(cluster, target(), { recursive: true }),
  },
  {
    name: 'tar, sync extract',
    stored: fs.statSync(tarFile).size,
    restore: () => tar.x({ file: tarFile, cwd: into(target()), sync: true }),
  },
  {
    name: 'tar, async extract',
    stored: fs.statSync(tarFile).size,
    restore: () => tar.x({ file: tarFile, cwd: into(target()) }),
  },
  {
    name: 'tar.gz, sync extract',
    stored: fs.statSync(tgzFile).size,
    restore: () => tar.x({ file: tgzFile, cwd: into(target()), sync: true }),
  },
];

const clusterBytes = fs
  .readdirSync(cluster, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile())
  .reduce((sum, e) => sum + fs.statSync(path.join(e.parentPath, e.name)).size, 0);
console.log(
  `bench/cluster-restore: ${fileCount(cluster)} files, ${(clusterBytes / 2 ** 20).toFixed(1)} MB; ${machine()}; median of ${runs}`,
);
const rows: Array<Array<string | number>> = [];
for (const candidate of candidates) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await candidate.restore();
    times.push(performance.now() - started);
  }
  rows.push([
    candidate.name,
    `${median(times).toFixed(0)} ms`,
    candidate.stored
      ? `${(candidate.stored / 2 ** 20).toFixed(1)} MB`
      : `${(clusterBytes / 2 ** 20).toFixed(1)} MB`,
  ]);
}
printTable(['how the cluster is kept', 'restore', 'stored size'], rows);
fs.rmSync(scratch, { recursive: true, force: true });
