// The runtime showcase: install (or reuse) the default mount, run SELECT 1 through the raw wire
// API, and ask the bundled pg_dump for its version. Run it twice: the second run reuses the install.
import { closeDefaultRuntime, execInteractive, hexc, prepareDefaultMount, runPgDump } from 'pglite-oxide';

const started = performance.now();
const mount = await prepareDefaultMount();
console.log(`mount root:  ${mount.mountRoot}`);
console.log(`pgdata:      ${mount.paths.pgdata}`);
console.log(`socket path: ${mount.socketPath}`);
console.log(`reused:      ${mount.reused ? 'yes, an existing install was found' : 'no, installed just now'}`);

const response = await execInteractive('SELECT 1;');
console.log('\nSELECT 1; raw backend response:');
console.log(hexc(response, '<-'));

const version = await runPgDump(['pg_dump', '--version']);
console.log(`\npg_dump --version: ${version?.trim() ?? '(pg_dump is not part of this install)'}`);

await closeDefaultRuntime();
console.log(`\ndone in ${((performance.now() - started) / 1000).toFixed(2)} s`);
