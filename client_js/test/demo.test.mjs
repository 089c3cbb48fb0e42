// The README's first command runs examples/demo.mjs: it must finish with everything as expected
// (it checks each step itself and exits 1 otherwise), terminal section included.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

test('examples/demo.mjs tours the host and exits 0', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['examples/demo.mjs'], {
    cwd: repoRoot,
    env: { ...process.env, BRIDGE_PYTHON: pythonCommand(), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0, output);
  assert.match(output, /Demo finished: everything behaved as expected\./);
  assert.match(output, /│ stty size: 8 64\n/);
});
