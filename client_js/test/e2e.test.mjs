// End to end: the client and Node transport against the real Python host and its built-in handlers.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CallCancelledError, CallTimeoutError, ConnectionClosedError, ErrorCodes, RpcError, spawnSidecar } from '../src/node.js';
import { nextEvent, processExists, pythonCommand, repoRoot } from '../test-support/host.mjs';

const traceListeners = new Set();
const stderrListeners = new Set();

function startHost(options = {}) {
  return spawnSidecar({
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'],
    cwd: repoRoot,
    readyTimeout: 20_000,
    onStderr: (line) => stderrListeners.forEach((listener) => listener(line)),
    trace: (direction, message) => traceListeners.forEach((listener) => listener(direction, message)),
    ...options,
  });
}

/** Resolve with the next message the client receives that passes `predicate`. */
function nextReceived(predicate) {
  return nextEvent(
    (cb) => {
      const listener = (direction, message) => direction === 'receive' && cb(message);
      traceListeners.add(listener);
      return () => traceListeners.delete(listener);
    },
    predicate,
  );
}

let client;
let lastSent;
traceListeners.add((direction, message) => {
  if (direction === 'send') lastSent = message;
});
/** The id of the request the shared client just sent (call() sends synchronously). */
function lastSentId() {
  return lastSent.id;
}

before(async () => {
  client = await startHost();
});

after(async () => {
  if (client && !client.closed) await client.close();
});

test('ready info describes the host', () => {
  assert.equal(client.ready.framing, 'ndjson');
  assert.equal(client.ready.pid, client.process.pid);
  assert.equal(typeof client.ready.version, 'string');
  assert.equal(typeof client.ready.capabilities, 'object');
});

test('system.ping', async () => {
  assert.equal(await client.call('system.ping'), 'pong');
});

test('demo.add with named and positional params', async () => {
  assert.equal(await client.call('demo.add', { a: 1, b: 2 }), 3);
  assert.equal(await client.call('demo.add', [1, 2]), 3);
  assert.equal(await client.call('demo.add', { a: -40, b: 2 }), -38);
});

test('demo.echo round-trips multi-byte text and a large payload', async () => {
  const text = 'é ü — € 中文 😀 🏳️‍🌈 \u2028 "quotes" \\ \n newline';
  assert.equal(await client.call('demo.echo', { value: text }), text);
  // Large enough to arrive in many pipe reads.
  const big = '😀ab€'.repeat(100_000);
  assert.equal(await client.call('demo.echo', { value: big }), big);
  const nested = { list: [1, 2.5, null, true, { deep: ['x'] }] };
  assert.deepEqual(await client.call('demo.echo', { value: nested }), nested);
});

test('many concurrent calls each get their own result', async () => {
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call('demo.add', { a: i, b: 1000 })));
  assert.deepEqual(
    results,
    Array.from({ length: 50 }, (_, i) => i + 1000),
  );
});

test('an unknown method rejects with -32601', async () => {
  await assert.rejects(
    client.call('no.such.method', {}),
    (e) => e instanceof RpcError && e.code === ErrorCodes.MethodNotFound,
  );
});

test('invalid params reject with -32602 and data.errors naming the field', async () => {
  const error = await client.call('demo.add', { a: 'x' }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, ErrorCodes.InvalidParams);
  assert.ok(Array.isArray(error.data.errors));
  assert.ok(error.data.errors.length >= 1);
  assert.ok(error.data.errors.some((e) => Array.isArray(e.loc) && e.loc.includes('a')));
  for (const item of error.data.errors) {
    assert.equal(typeof item.msg, 'string');
    assert.equal(typeof item.type, 'string');
  }
});

test("demo.fail rejects with the app's code and data", async () => {
  const error = await client.call('demo.fail', { message: 'custom message' }).then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, 1001);
  assert.equal(error.message, 'custom message');
  assert.equal(typeof error.data.hint, 'string');
});

test('demo.crash rejects with -32603 and the traceback goes to stderr', async () => {
  const logged = nextEvent(
    (cb) => {
      stderrListeners.add(cb);
      return () => stderrListeners.delete(cb);
    },
    (line) => line.includes('RuntimeError'),
  );
  await assert.rejects(client.call('demo.crash'), (e) => e instanceof RpcError && e.code === ErrorCodes.InternalError);
  await logged;
});

test('demo.emit: the event arrives through on(), and unsubscribing stops it', async () => {
  const seen = [];
  const off = client.on('demo.tick', (params) => seen.push(params));
  const arrived = nextEvent((cb) => client.on('demo.tick', cb));
  assert.equal(await client.call('demo.emit', { event: 'demo.tick', payload: { n: 1 } }), true);
  assert.deepEqual(await arrived, { n: 1 });
  off();
  const second = nextEvent((cb) => client.on('demo.tick', cb));
  await client.call('demo.emit', { event: 'demo.tick', payload: { n: 2 } });
  assert.deepEqual(await second, { n: 2 });
  assert.deepEqual(seen, [{ n: 1 }]);
});

test('notify: a demo.emit notification makes the host emit the event', async () => {
  const arrived = nextEvent((cb) => client.on('demo.notified', cb));
  client.notify('demo.emit', { event: 'demo.notified', payload: ['by', 'notification'] });
  assert.deepEqual(await arrived, ['by', 'notification']);
});

test('demo.count reports progress to the call, before its result', async () => {
  const values = [];
  const result = await client.call('demo.count', { n: 5 }, { onProgress: (value) => values.push(value) });
  assert.equal(result, 5);
  assert.deepEqual(
    values,
    [1, 2, 3, 4, 5].map((done) => ({ done, total: 5 })),
  );
});

test('demo.count with a $meta progressToken reports to that token', async () => {
  const values = [];
  const off = client.onProgress('my-token', (value) => values.push(value));
  await client.call('demo.count', { n: 2, $meta: { progressToken: 'my-token' } });
  off();
  assert.deepEqual(values, [
    { done: 1, total: 2 },
    { done: 2, total: 2 },
  ]);
});

test('aborting a running demo.sleep rejects promptly and the host answers -32800', async () => {
  const controller = new AbortController();
  const started = Date.now();
  const call = client.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
  const id = lastSentId();
  // The host reads in order: once a later ping is answered, the sleep is surely running.
  assert.equal(await client.call('system.ping'), 'pong');
  const hostReply = nextReceived((message) => message.id === id);
  controller.abort();
  await assert.rejects(call, CallCancelledError);
  const reply = await hostReply;
  assert.equal(reply.error.code, ErrorCodes.RequestCancelled);
  assert.ok(Date.now() - started < 10_000, 'cancellation took as long as the sleep');
  assert.equal(await client.call('system.ping'), 'pong');
});

test('a $/cancelRequest sent right behind its request still cancels it', { timeout: 10_000 }, async () => {
  // Own host: if the cancel were lost, the 30 s sleep would hold up the shared host's exit.
  const host = await startHost();
  try {
    const controller = new AbortController();
    const hostReply = nextReceived((message) => message.id === 1);
    // Corked, the request and its cancel reach the host in one write, as they may in real life.
    host.process.stdin.cork();
    const call = host.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
    controller.abort();
    host.process.stdin.uncork();
    await assert.rejects(call, CallCancelledError);
    const reply = await hostReply;
    assert.equal(reply.error?.code, ErrorCodes.RequestCancelled);
  } finally {
    host.process.kill('SIGKILL');
  }
});

test('a timeout cancels demo.sleep on the host too', async () => {
  const started = Date.now();
  const call = client.call('demo.sleep', { seconds: 30 }, { timeout: 200 });
  const hostReply = nextReceived((message) => message.error?.code === ErrorCodes.RequestCancelled);
  await assert.rejects(call, CallTimeoutError);
  assert.ok(Date.now() - started >= 200);
  await hostReply;
});

test('close() lets an in-flight call finish, exits 0, and the process is gone', async () => {
  const host = await startHost();
  const pid = host.process.pid;
  assert.ok(processExists(pid));
  const inFlight = host.call('demo.sleep', { seconds: 0.3 });
  const closing = host.close();
  assert.equal(await inFlight, 0.3);
  assert.equal(await closing, 0);
  assert.equal(processExists(pid), false);
  await assert.rejects(host.call('system.ping'), ConnectionClosedError);
});

test("close() with a call still running past the host's grace: -32802, then exit 0", async () => {
  const host = await startHost({ env: { BRIDGE_SHUTDOWN_GRACE: '0.2' } });
  const call = host.call('demo.sleep', { seconds: 30 });
  assert.equal(await host.call('system.ping'), 'pong'); // the sleep is running
  const closing = host.close();
  await assert.rejects(call, (e) => e instanceof RpcError && e.code === ErrorCodes.ServerCancelled);
  assert.equal(await closing, 0);
  assert.equal(host.process.signalCode, null);
});

test('the shared host closes with exit code 0', async () => {
  const pid = client.process.pid;
  assert.equal(await client.close(), 0);
  assert.equal(processExists(pid), false);
});
