// The Node transport (src/node.js) against small fake hosts written in Node, to reach the
// edges the real host does not: dying early, never getting ready, ignoring EOF and SIGTERM.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionClosedError, RpcError, spawnSidecar } from '../src/node.js';
import { nextEvent, processExists } from '../test-support/host.mjs';

/** Spawn options for a Node script playing the host; `send`, `ready` and `onRequest` are predefined. */
function fakeHost(body, options = {}) {
  const prelude = `
    const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
    const ready = (extra) => send({ jsonrpc: '2.0', method: '$/ready',
      params: { version: 'fake', pid: process.pid, framing: process.env.BRIDGE_FRAMING, capabilities: {}, ...extra } });
    const onRequest = (handler) => require('node:readline')
      .createInterface({ input: process.stdin })
      .on('line', (line) => handler(JSON.parse(line)));
  `;
  return { command: process.execPath, args: ['-e', prelude + body], readyTimeout: 5000, onStderr: null, ...options };
}

test('resolves once $/ready arrives, exposing its params; forces NDJSON framing', async () => {
  const client = await spawnSidecar(fakeHost(`ready({ extra: 1 }); onRequest(() => {});`));
  try {
    assert.equal(client.ready.framing, 'ndjson');
    assert.equal(client.ready.pid, client.process.pid);
    assert.equal(client.ready.extra, 1);
  } finally {
    assert.equal(await client.close(), 0);
  }
});

test('BRIDGE_FRAMING given by the caller is left alone', async () => {
  const client = await spawnSidecar(fakeHost(`ready(); onRequest(() => {});`, { env: { BRIDGE_FRAMING: 'auto' } }));
  assert.equal(client.ready.framing, 'auto');
  await client.close();
});

test('rejects with the exit code and stderr tail if the host exits before $/ready', async () => {
  const error = await spawnSidecar(
    fakeHost(`console.error('ModuleNotFoundError: No module named bridge'); process.exit(3);`),
  ).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof ConnectionClosedError);
  assert.match(error.message, /before it was ready/);
  assert.match(error.message, /code 3/);
  assert.match(error.message, /No module named bridge/);
  assert.equal(error.cause.exitCode, 3);
});

test('rejects if the command cannot be run', async () => {
  const error = await spawnSidecar({ command: '/nonexistent/python-for-bridge', onStderr: null }).then(
    () => assert.fail('resolved'),
    (e) => e,
  );
  assert.ok(error instanceof ConnectionClosedError);
  assert.match(error.message, /ENOENT/);
});

test('rejects a missing command without spawning', async () => {
  await assert.rejects(spawnSidecar({}), TypeError);
});

test('rejects after readyTimeout, and the silent process is gone by then', async () => {
  let pid;
  const started = Date.now();
  const error = await spawnSidecar(
    fakeHost(`send({ jsonrpc: '2.0', method: 'pid', params: { pid: process.pid } }); setInterval(() => {}, 1000);`, {
      readyTimeout: 300,
      trace: (direction, message) => {
        if (message.method === 'pid') pid = message.params.pid;
      },
    }),
  ).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof ConnectionClosedError);
  assert.match(error.message, /no \$\/ready within 300 ms/);
  assert.ok(Date.now() - started >= 300);
  assert.equal(typeof pid, 'number');
  assert.equal(processExists(pid), false);
});

test('stderr arrives line by line at onStderr', async () => {
  const lines = [];
  const client = await spawnSidecar(
    fakeHost(`process.stderr.write('first li'); process.stderr.write('ne\\nsecond €\\n'); ready(); onRequest(() => {});`, {
      onStderr: (line) => lines.push(line),
    }),
  );
  assert.equal(await client.close(), 0);
  // The process has closed, so all of stderr has been read.
  assert.deepEqual(lines, ['first line', 'second €']);
});

test('a host that dies mid-call rejects the call with ConnectionClosedError', async () => {
  const client = await spawnSidecar(
    fakeHost(`ready(); onRequest(() => { console.error('segfault, probably'); process.exit(7); });`),
  );
  const closed = nextEvent((cb) => client.onClose(cb));
  const error = await client.call('anything').then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof ConnectionClosedError);
  assert.match(error.message, /exited with code 7 unexpectedly/);
  assert.match(error.message, /segfault, probably/);
  assert.equal(error.exitCode, 7);
  assert.equal(await closed, error);
  assert.equal(client.closed, true);
  await assert.rejects(client.call('again'), ConnectionClosedError);
});

test('non-JSON lines on stdout are reported and skipped', async () => {
  const errors = [];
  const client = await spawnSidecar(
    fakeHost(
      `ready(); onRequest((m) => { process.stdout.write('oops, a print()\\n'); send({ jsonrpc: '2.0', id: m.id, result: 'fine' }); });`,
      { onError: (error) => errors.push(error) },
    ),
  );
  assert.equal(await client.call('x'), 'fine');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].line, 'oops, a print()');
  await client.close();
});

test('responses split into several writes and batch replies are handled', async () => {
  const client = await spawnSidecar(
    fakeHost(`ready(); onRequest((m) => {
      if (m.method === 'split') {
        const line = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: 'π😀' }) + '\\n');
        const cut = line.indexOf(Buffer.from('😀')) + 2; // inside the 4-byte character
        process.stdout.write(line.subarray(0, cut));
        setTimeout(() => process.stdout.write(line.subarray(cut)), 20);
      } else {
        process.stdout.write(JSON.stringify([{ jsonrpc: '2.0', id: m.id, error: { code: 5, message: 'batched' } }]) + '\\n');
      }
    });`),
  );
  assert.equal(await client.call('split'), 'π😀');
  await assert.rejects(client.call('batch'), (e) => e instanceof RpcError && e.code === 5);
  await client.close();
});

test('close() sends SIGTERM to a host that ignores EOF', async () => {
  const client = await spawnSidecar(fakeHost(`ready(); setInterval(() => {}, 1000);`, { closeTimeout: 100 }));
  const pid = client.process.pid;
  assert.equal(await client.close(), null);
  assert.equal(client.process.signalCode, 'SIGTERM');
  assert.equal(processExists(pid), false);
});

test('close() falls back to SIGKILL when SIGTERM is ignored', { skip: process.platform === 'win32' }, async () => {
  const client = await spawnSidecar(
    fakeHost(`process.on('SIGTERM', () => {}); ready(); setInterval(() => {}, 1000);`, { closeTimeout: 100 }),
  );
  assert.equal(await client.close(), null);
  assert.equal(client.process.signalCode, 'SIGKILL');
});

test('close() is idempotent and resolves with the same exit code', async () => {
  const client = await spawnSidecar(fakeHost(`ready(); process.stdin.on('end', () => process.exit(4)); process.stdin.resume();`));
  const [a, b] = await Promise.all([client.close(), client.close()]);
  assert.equal(a, 4);
  assert.equal(b, 4);
  assert.equal(await client.close(), 4);
});
