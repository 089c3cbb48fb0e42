import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CallCancelledError,
  CallTimeoutError,
  ConnectionClosedError,
  ErrorCodes,
  RpcClient,
  RpcError,
} from '../src/index.js';

/** An in-memory Transport: records what the client sends, lets the test play the host. */
class FakeTransport {
  sent = [];
  closeCalls = 0;
  #messageListeners = new Set();
  #closeListeners = new Set();
  #waiters = [];

  send(message) {
    if (this.isClosed) throw new ConnectionClosedError('fake transport closed');
    // Round-trip through JSON, as a real transport would.
    this.sent.push(JSON.parse(JSON.stringify(message)));
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
  onMessage(listener) {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }
  onClose(listener) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }
  close() {
    this.closeCalls++;
    return 'closed-result';
  }

  // Test side.
  get listenerCount() {
    return this.#messageListeners.size + this.#closeListeners.size;
  }
  receive(message) {
    for (const listener of this.#messageListeners) listener(message);
  }
  disconnect(error) {
    this.isClosed = true;
    for (const listener of this.#closeListeners) listener(error);
  }
  /** The last message sent (the client sends synchronously inside call()). */
  get last() {
    return this.sent.at(-1);
  }
}

function setup(options) {
  const transport = new FakeTransport();
  const errors = [];
  const client = new RpcClient(transport, { onError: (error) => errors.push(error), ...options });
  return { transport, client, errors };
}

test('call sends a request with increasing numeric ids and resolves with the result', async () => {
  const { transport, client } = setup();
  const first = client.call('demo.add', { a: 1, b: 2 });
  const second = client.call('demo.add', [3, 4]);
  const third = client.call('system.ping');
  assert.deepEqual(transport.sent, [
    { jsonrpc: '2.0', id: 1, method: 'demo.add', params: { a: 1, b: 2 } },
    { jsonrpc: '2.0', id: 2, method: 'demo.add', params: [3, 4] },
    { jsonrpc: '2.0', id: 3, method: 'system.ping' },
  ]);
  // Answer out of order: matching is by id.
  transport.receive({ jsonrpc: '2.0', id: 3, result: 'pong' });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 3 });
  transport.receive({ jsonrpc: '2.0', id: 2, result: 7 });
  assert.deepEqual(await Promise.all([first, second, third]), [3, 7, 'pong']);
});

test('a null result resolves with null', async () => {
  const { transport, client } = setup();
  const call = client.call('x');
  transport.receive({ jsonrpc: '2.0', id: 1, result: null });
  assert.equal(await call, null);
});

test('an error response rejects with RpcError carrying code, message and data', async () => {
  const { transport, client } = setup();
  const call = client.call('demo.add', { a: 'x' });
  const data = { errors: [{ loc: ['a'], msg: 'not an int', type: 'int_type' }] };
  transport.receive({ jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'Invalid params', data } });
  const error = await call.then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof RpcError);
  assert.equal(error.name, 'RpcError');
  assert.equal(error.code, ErrorCodes.InvalidParams);
  assert.equal(error.message, 'Invalid params');
  assert.deepEqual(error.data, data);
});

test('a malformed error object still rejects with an RpcError', async () => {
  const { transport, client } = setup();
  const call = client.call('x');
  transport.receive({ jsonrpc: '2.0', id: 1, error: 'boom' });
  await assert.rejects(call, (e) => e instanceof RpcError && e.code === ErrorCodes.InternalError);
});

test('responses to unknown ids are ignored, and the real one still settles the call', async () => {
  const { transport, client, errors } = setup();
  const call = client.call('x');
  transport.receive({ jsonrpc: '2.0', id: 99, result: 'stray' });
  transport.receive({ jsonrpc: '2.0', id: '1', result: 'string id is a different id' });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 'mine' });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 'duplicate' });
  assert.equal(await call, 'mine');
  assert.deepEqual(errors, []);
});

test('a batch reply (array of responses) settles each call', async () => {
  const { transport, client } = setup();
  const a = client.call('a');
  const b = client.call('b');
  transport.receive([
    { jsonrpc: '2.0', id: 2, error: { code: 1001, message: 'nope' } },
    { jsonrpc: '2.0', method: 'demo.tick', params: { n: 1 } },
    { jsonrpc: '2.0', id: 1, result: 'A' },
    'garbage',
  ]);
  assert.equal(await a, 'A');
  await assert.rejects(b, (e) => e instanceof RpcError && e.code === 1001);
});

test('an error with a null id (e.g. a parse error) is reported, not thrown', () => {
  const { transport, errors } = setup();
  transport.receive({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, ErrorCodes.ParseError);
});

test('messages that are not JSON-RPC are reported to onError', () => {
  const { transport, errors } = setup();
  transport.receive(42);
  transport.receive({ jsonrpc: '2.0', id: 5 });
  assert.equal(errors.length, 2);
});

test('invalid arguments reject without sending', async () => {
  const { transport, client } = setup();
  await assert.rejects(client.call(''), TypeError);
  await assert.rejects(client.call('x', 5), TypeError);
  await assert.rejects(client.call('x', null), TypeError);
  await assert.rejects(client.call('x', {}, { timeout: -1 }), TypeError);
  await assert.rejects(client.call('x', {}, { timeout: 2 ** 31 }), TypeError);
  assert.throws(() => client.notify('x', 'str'), TypeError);
  assert.deepEqual(transport.sent, []);
});

test('notify sends a message without an id', () => {
  const { transport, client } = setup();
  client.notify('demo.emit', { event: 'e' });
  client.notify('system.ping');
  assert.deepEqual(transport.sent, [
    { jsonrpc: '2.0', method: 'demo.emit', params: { event: 'e' } },
    { jsonrpc: '2.0', method: 'system.ping' },
  ]);
});

test('the caller option goes out as $caller beside params of every shape, for calls, notifications and streams', () => {
  const { transport, client } = setup();
  const caller = { window: 3, frame: 'app://x' };
  client.call('a', { x: 1, $meta: { caller: 'forged' } }, { caller });
  client.call('b', [1, 2], { caller });
  client.call('c', undefined, { caller });
  client.call('d', undefined, { caller: 'alice' });
  client.notify('e', [1], { caller });
  client.stream('f', [1], { caller });
  client.stream('g', { n: 1 }, { caller, window: 2 });
  client.call('h', [1]);
  assert.deepEqual(transport.sent, [
    { jsonrpc: '2.0', id: 1, method: 'a', params: { x: 1, $meta: { caller: 'forged' } }, $caller: caller },
    { jsonrpc: '2.0', id: 2, method: 'b', params: [1, 2], $caller: caller },
    { jsonrpc: '2.0', id: 3, method: 'c', $caller: caller },
    { jsonrpc: '2.0', id: 4, method: 'd', $caller: 'alice' },
    { jsonrpc: '2.0', method: 'e', params: [1], $caller: caller },
    { jsonrpc: '2.0', id: 5, method: 'f', params: [1], $caller: caller },
    { jsonrpc: '2.0', id: 6, method: 'g', params: { n: 1, $meta: { stream: { window: 2 } } }, $caller: caller },
    { jsonrpc: '2.0', id: 7, method: 'h', params: [1] },
  ]);
});

test('aborting sends $/cancelRequest with the id and rejects with CallCancelledError', async () => {
  const { transport, client } = setup();
  const controller = new AbortController();
  const call = client.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
  const reason = new Error('user closed the window');
  controller.abort(reason);
  assert.deepEqual(transport.last, { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 1 } });
  const error = await call.then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof CallCancelledError);
  assert.equal(error.name, 'AbortError');
  assert.equal(error.cause, reason);
  // The host's late -32800 reply is for an id nobody waits on any more.
  transport.receive({ jsonrpc: '2.0', id: 1, error: { code: -32800, message: 'Request cancelled' } });
  assert.equal(transport.sent.length, 2);
});

test('aborting after the response arrived sends nothing', async () => {
  const { transport, client } = setup();
  const controller = new AbortController();
  const call = client.call('x', undefined, { signal: controller.signal });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 'done' });
  assert.equal(await call, 'done');
  controller.abort();
  assert.equal(transport.sent.length, 1);
});

test('an already-aborted signal rejects without sending', async () => {
  const { transport, client } = setup();
  await assert.rejects(client.call('x', {}, { signal: AbortSignal.abort() }), CallCancelledError);
  assert.deepEqual(transport.sent, []);
});

test('timeout sends $/cancelRequest and rejects with CallTimeoutError', async () => {
  const { transport, client } = setup();
  const call = client.call('demo.sleep', { seconds: 30 }, { timeout: 20 });
  const error = await call.then(() => assert.fail('resolved'), (e) => e);
  assert.ok(error instanceof CallTimeoutError);
  assert.equal(error.name, 'TimeoutError');
  assert.equal(error.timeout, 20);
  assert.deepEqual(transport.last, { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 1 } });
});

test('the client-wide timeout applies unless a call overrides it', async () => {
  const { transport, client } = setup({ timeout: 10 });
  const defaulted = client.call('slow');
  const overridden = client.call('slow', undefined, { timeout: null });
  await assert.rejects(defaulted, CallTimeoutError);
  // The overridden call is still pending; answer it.
  transport.receive({ jsonrpc: '2.0', id: 2, result: 'ok' });
  assert.equal(await overridden, 'ok');
});

test('a response before the timeout wins, and the timer is cleared', async () => {
  const { transport, client } = setup();
  const call = client.call('x', undefined, { timeout: 20 });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 1 });
  assert.equal(await call, 1);
  // A later-expiring call times out after the first call's timer would have fired.
  await assert.rejects(client.call('y', undefined, { timeout: 40 }), CallTimeoutError);
  const cancelled = transport.sent.filter((m) => m.method === '$/cancelRequest').map((m) => m.params.id);
  assert.deepEqual(cancelled, [2]);
});

test('closing the transport rejects every pending call with ConnectionClosedError', async () => {
  const { transport, client } = setup();
  const calls = [client.call('a'), client.call('b', [1])];
  let closedWith;
  client.onClose((error) => (closedWith = error));
  const cause = new Error('host exited with code 1');
  transport.disconnect(cause);
  for (const call of calls) {
    await assert.rejects(call, (e) => e instanceof ConnectionClosedError && e.cause === cause);
  }
  assert.ok(closedWith instanceof ConnectionClosedError);
  assert.equal(client.closed, true);
  // Later calls reject at once; notify throws.
  await assert.rejects(client.call('c'), ConnectionClosedError);
  assert.throws(() => client.notify('n'), ConnectionClosedError);
  // Unsubscribed from the transport.
  assert.equal(transport.listenerCount, 0);
});

test('a ConnectionClosedError from the transport is passed through as is', async () => {
  const { transport, client } = setup();
  const call = client.call('a');
  const error = new ConnectionClosedError('bridge host exited with code 3');
  transport.disconnect(error);
  await assert.rejects(call, (e) => e === error);
});

test('close() closes the transport, returns its result, and lets in-flight calls finish', async () => {
  const { transport, client } = setup();
  const inFlight = client.call('a');
  assert.equal(await client.close(), 'closed-result');
  assert.equal(transport.closeCalls, 1);
  assert.equal(client.closed, true);
  await assert.rejects(client.call('b'), ConnectionClosedError);
  // The host finishes in-flight work after EOF.
  transport.receive({ jsonrpc: '2.0', id: 1, result: 'finished' });
  assert.equal(await inFlight, 'finished');
});

test('onClose registered after closing is still called', async () => {
  const { transport, client } = setup();
  transport.disconnect();
  const error = await new Promise((resolve) => client.onClose(resolve));
  assert.ok(error instanceof ConnectionClosedError);
});

test('on() delivers notifications by method until unsubscribed', () => {
  const { transport, client } = setup();
  const ticks = [];
  const others = [];
  const off = client.on('demo.tick', (params, method) => ticks.push([method, params]));
  client.on('demo.other', (params) => others.push(params));
  transport.receive({ jsonrpc: '2.0', method: 'demo.tick', params: { n: 1 } });
  transport.receive({ jsonrpc: '2.0', method: 'demo.other', params: ['x'] });
  off();
  off(); // harmless twice
  transport.receive({ jsonrpc: '2.0', method: 'demo.tick', params: { n: 2 } });
  assert.deepEqual(ticks, [['demo.tick', { n: 1 }]]);
  assert.deepEqual(others, [['x']]);
});

test('the same handler subscribed twice is two subscriptions', () => {
  const { transport, client } = setup();
  let count = 0;
  const handler = () => count++;
  const off1 = client.on('e', handler);
  client.on('e', handler);
  off1();
  transport.receive({ jsonrpc: '2.0', method: 'e' });
  assert.equal(count, 1);
});

test('a throwing handler is reported and does not stop other handlers', () => {
  const { transport, client, errors } = setup();
  const seen = [];
  client.on('e', () => {
    throw new Error('handler bug');
  });
  client.on('e', (params) => seen.push(params));
  transport.receive({ jsonrpc: '2.0', method: 'e', params: { ok: true } });
  assert.deepEqual(seen, [{ ok: true }]);
  assert.equal(errors[0].message, 'handler bug');
});

test('onProgress in call options receives the values for that call only, until it settles', async () => {
  const { transport, client } = setup();
  const values = [];
  const other = [];
  const call = client.call('demo.count', { n: 2 }, { onProgress: (v) => values.push(v) });
  client.call('demo.count', { n: 2 }, { onProgress: (v) => other.push(v) });
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 1, value: { done: 1, total: 2 } } });
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 2, value: { done: 1, total: 2 } } });
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 1, value: { done: 2, total: 2 } } });
  transport.receive({ jsonrpc: '2.0', id: 1, result: 2 });
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 1, value: 'late' } });
  assert.equal(await call, 2);
  assert.deepEqual(values, [
    { done: 1, total: 2 },
    { done: 2, total: 2 },
  ]);
  assert.deepEqual(other, [{ done: 1, total: 2 }]);
});

test('client.onProgress subscribes to a custom token; on("$/progress") sees all progress', () => {
  const { transport, client } = setup();
  const custom = [];
  const all = [];
  const off = client.onProgress('job-7', (v) => custom.push(v));
  client.on('$/progress', (params) => all.push(params));
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 'job-7', value: 1 } });
  off();
  transport.receive({ jsonrpc: '2.0', method: '$/progress', params: { token: 'job-7', value: 2 } });
  assert.deepEqual(custom, [1]);
  assert.deepEqual(all, [
    { token: 'job-7', value: 1 },
    { token: 'job-7', value: 2 },
  ]);
});

test('a request from the host is answered with Method not found', () => {
  const { transport } = setup();
  transport.receive({ jsonrpc: '2.0', id: 'srv-1', method: 'client.doSomething', params: {} });
  assert.equal(transport.last.id, 'srv-1');
  assert.equal(transport.last.error.code, ErrorCodes.MethodNotFound);
});

test('trace sees every message in both directions', async () => {
  const traced = [];
  const { transport, client } = setup({ trace: (direction, message) => traced.push([direction, message]) });
  const call = client.call('x');
  transport.receive({ jsonrpc: '2.0', id: 1, result: 0 });
  await call;
  assert.deepEqual(
    traced.map(([direction, message]) => [direction, message.id]),
    [
      ['send', 1],
      ['receive', 1],
    ],
  );
});

test('a send that throws rejects the call instead of leaving it pending', async () => {
  const { transport, client } = setup();
  transport.isClosed = true; // the transport throws, but has not reported closing yet
  await assert.rejects(client.call('x'), ConnectionClosedError);
  transport.isClosed = false;
  const next = client.call('y');
  assert.equal(transport.last.id, 2);
  transport.receive({ jsonrpc: '2.0', id: 2, result: 'y' });
  assert.equal(await next, 'y');
});
