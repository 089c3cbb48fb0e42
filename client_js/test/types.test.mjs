// The TypeScript declarations: the local tsc, --strict, over every src/*.d.ts and an app's use
// of the whole API (test-support/typecheck.ts). Any diagnostic fails the test.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../', import.meta.url));
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
const project = fileURLToPath(new URL('../test-support/tsconfig.json', import.meta.url));

function runTsc(...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '--project', project, '--pretty', 'false', ...args], { cwd: root }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}${stderr}`.trim() });
    });
  });
}

test('tsc checks every declaration file and the usage file', async () => {
  const { code, output } = await runTsc('--listFilesOnly');
  assert.equal(code, 0, output);
  const checked = new Set(output.split('\n').map((line) => line.trim()));
  const expected = [
    ...readdirSync(new URL('../src/', import.meta.url))
      .filter((name) => name.endsWith('.d.ts'))
      .map((name) => `${root}src/${name}`),
    `${root}test-support/typecheck.ts`,
    `${root}test-support/typecheck-state.ts`,
  ];
  assert.ok(expected.length >= 7, 'the declaration files were not found');
  for (const file of expected) assert.ok(checked.has(file), `tsc does not check ${file}`);
});

test('tsc --noEmit --strict reports no diagnostic', async () => {
  const { code, output } = await runTsc();
  assert.equal(output, '', `tsc reported:\n${output}`);
  assert.equal(code, 0);
});
