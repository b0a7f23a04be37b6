// Builds flash_first.js into a component with componentize-js (StarlingMonkey), with every
// optional WASI feature disabled: the component imports nothing but the switchyard:policy world.
//   node build.mjs OUT.wasm
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? 'flash-first-js.wasm');
// componentize-js lets the module loader see only the working directory (as `/`), and the
// policy imports the SDK module from sdk/js: build from the repository's root so both are in it.
process.chdir(resolve(here, '../..'));
const { component } = await componentize({
  sourcePath: resolve(here, 'flash_first.js'),
  witPath: resolve(here, '../../wit'),
  worldName: 'policy',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
mkdirSync(dirname(out), { recursive: true });
await writeFile(out, component);
console.error(`componentized flash_first.js -> ${out} (${component.length} bytes)`);
