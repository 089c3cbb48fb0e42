// A host whose own child keeps stderr open must still be seen to exit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSidecar } from '../src/node.js';

test('the host is seen gone when it dies, even if its child still holds stderr', { timeout: 20_000 }, async () => {
  // The fake host starts a grandchild that inherits stderr and sleeps, answers $/ready, then dies.
  const script = `
    const { spawn } = require('node:child_process');
    spawn(process.execPath, ['-e', 'setTimeout(() => {}, 15000)'], { stdio: ['ignore', 'ignore', 'inherit'], detached: false });
    process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: '$/ready', params: { version: 'fake' } }) + '\\n');
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
  `;
  const client = await spawnSidecar({ command: process.execPath, args: ['-e', script], onStderr: () => {} });
  const started = Date.now();
  const error = await new Promise((resolve) => client.onClose(resolve));
  assert.ok(Date.now() - started < 5000, 'the exit was noticed long before the grandchild let go of stderr');
  assert.equal(error.signal, 'SIGKILL');
});
