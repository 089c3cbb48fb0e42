// Interop: the unmodified vscode-jsonrpc package talks to the real host over LSP framing.
// This checks the host, not our client: a stock JSON-RPC/LSP client must just work.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import {
  CancellationTokenSource,
  ParameterStructures,
  ProgressType,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} from 'vscode-jsonrpc/node';
import { processExists, pythonCommand, repoRoot } from '../test-support/host.mjs';

const REQUEST_CANCELLED = -32800;

let child;
let connection;
let ready;
const stderr = [];

before(async () => {
  child = spawn(pythonCommand(), ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--framing', 'lsp'], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.setEncoding('utf8').on('data', (text) => stderr.push(text));
  connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  // Registered before listen(), so the $/ready sent at start-up is not missed.
  ready = new Promise((resolve) => connection.onNotification('$/ready', resolve));
  connection.listen();
});

after(async () => {
  connection?.dispose();
  if (child && child.exitCode === null && child.signalCode === null) child.kill();
});

test('the host announces itself with $/ready in LSP framing', async () => {
  const params = await ready;
  assert.equal(params.framing, 'lsp');
  assert.equal(params.pid, child.pid);
});

test('sendRequest with named params (vscode-jsonrpc starts ids at 0)', async () => {
  await ready;
  assert.equal(await connection.sendRequest('demo.add', ParameterStructures.byName, { a: 1, b: 2 }), 3);
  // With ParameterStructures.auto an object literal is also sent by name.
  assert.equal(await connection.sendRequest('demo.add', { a: 20, b: 22 }), 42);
});

test('sendRequest with positional params', async () => {
  // Several arguments are sent as a params array.
  assert.equal(await connection.sendRequest('demo.add', 1, 2), 3);
  assert.equal(await connection.sendRequest('demo.add', ParameterStructures.byPosition, 30, 12), 42);
});

test('errors arrive as ResponseError with the host codes', async () => {
  const notFound = await connection.sendRequest('no.such.method').then(() => assert.fail('resolved'), (e) => e);
  assert.ok(notFound instanceof ResponseError);
  assert.equal(notFound.code, -32601);

  const invalid = await connection.sendRequest('demo.add', { a: 'x' }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(invalid instanceof ResponseError);
  assert.equal(invalid.code, -32602);
  assert.ok(Array.isArray(invalid.data.errors));

  const app = await connection.sendRequest('demo.fail', {}).then(() => assert.fail('resolved'), (e) => e);
  assert.equal(app.code, 1001);
  assert.equal(typeof app.data.hint, 'string');
});

test('server-to-client notification from a request', async () => {
  const arrived = new Promise((resolve) => {
    const sub = connection.onNotification('demo.tick', (params) => {
      sub.dispose();
      resolve(params);
    });
  });
  assert.equal(await connection.sendRequest('demo.emit', { event: 'demo.tick', payload: { n: 1 } }), true);
  assert.deepEqual(await arrived, { n: 1 });
});

test('client-to-server notification (demo.emit) makes the host emit the event', async () => {
  const arrived = new Promise((resolve) => {
    const sub = connection.onNotification('demo.from-notification', (params) => {
      sub.dispose();
      resolve(params);
    });
  });
  await connection.sendNotification('demo.emit', { event: 'demo.from-notification', payload: { ok: true } });
  assert.deepEqual(await arrived, { ok: true });
});

test('CancellationTokenSource cancels demo.sleep: ResponseError -32800', async () => {
  const source = new CancellationTokenSource();
  const started = Date.now();
  const request = connection.sendRequest('demo.sleep', { seconds: 30 }, source.token);
  // Cancel once the host has surely received the request: a ping sent after it has come back.
  await connection.sendRequest('system.ping');
  source.cancel();
  const error = await request.then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof ResponseError);
  assert.equal(error.code, REQUEST_CANCELLED);
  assert.ok(Date.now() - started < 10_000, 'cancellation took as long as the sleep');
});

test('$/progress with a progressToken reaches connection.onProgress', async () => {
  const values = [];
  const sub = connection.onProgress(new ProgressType(), 'count-token', (value) => values.push(value));
  const result = await connection.sendRequest('demo.count', { n: 3, $meta: { progressToken: 'count-token' } });
  sub.dispose();
  assert.equal(result, 3);
  assert.deepEqual(values, [
    { done: 1, total: 3 },
    { done: 2, total: 3 },
    { done: 3, total: 3 },
  ]);
});

test('$/progress without a token uses the request id (seen as unhandled progress)', async () => {
  const seen = [];
  const sub = connection.onUnhandledProgress((params) => seen.push(params));
  assert.equal(await connection.sendRequest('demo.count', { n: 2 }), 2);
  sub.dispose();
  assert.equal(seen.length, 2);
  assert.equal(typeof seen[0].token, 'number');
  assert.equal(seen[1].token, seen[0].token);
  assert.deepEqual(
    seen.map((p) => p.value),
    [
      { done: 1, total: 2 },
      { done: 2, total: 2 },
    ],
  );
});

test('ending stdin makes the host exit 0', async () => {
  const pid = child.pid;
  const exited = once(child, 'exit');
  connection.dispose();
  child.stdin.end();
  const [code] = await exited;
  assert.equal(code, 0, stderr.join(''));
  assert.equal(processExists(pid), false);
});
