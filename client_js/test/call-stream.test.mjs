// call() on a streaming method resolves with every item the `$/stream` chunks carried, in order,
// instead of the closing reply's totals. The wire details against an in-memory host, then the real
// host (test-support/stream_app.py) directly and through a Supervisor.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CallCancelledError, CallTimeoutError, RpcClient, RpcError, Supervisor, spawnSidecar } from '../src/node.js';
import { FakeTransport } from '../test-support/fake-transport.mjs';
import { supportAppOptions } from '../test-support/host.mjs';


/** The items data.rows makes: `"<8-digit index>xxxxxxxxxx"`. */
const rows = (n, from = 0) => Array.from({ length: n }, (_, i) => `${String(from + i).padStart(8, '0')}xxxxxxxxxx`);


describe('call() on a streaming method, on the wire', () => {
  test("collects each call's chunks apart from the others and from stream()'s, and resolves with the items", async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const seen = [];
    client.on('$/stream', (params) => seen.push(params.id));
    const first = client.call('rows', { n: 3 });
    const second = client.call('rows', { n: 2 }, { meta: true });
    const stream = client.stream('rows', { n: 1 });
    const [a, b, c] = transport.sent.map((m) => m.id);
    assert.equal(transport.sent[0].params.$meta, undefined, 'call() asks for no pacing: it takes every chunk as it comes');
    transport.chunk(a, 0, ['a0', ['a1 is an array item']], 2);
    transport.chunk(b, 0, ['b0'], 1);
    transport.chunk(c, 0, ['c0'], 1);
    transport.chunk(a, 1, ['a2'], 3);
    transport.chunk(b, 1, ['b1'], 2);
    transport.receive({ jsonrpc: '2.0', id: a, result: { items: 3, chunks: 2 } });
    transport.receive({ jsonrpc: '2.0', id: b, result: { items: 2, chunks: 2 }, $meta: { handlerMs: 4 } });
    transport.receive({ jsonrpc: '2.0', id: c, result: { items: 1, chunks: 1 } });
    assert.deepEqual(await first, ['a0', ['a1 is an array item'], 'a2']);
    assert.deepEqual(await second, { result: ['b0', 'b1'], meta: { handlerMs: 4 } });
    const streamed = [];
    for await (const items of stream) streamed.push(...items);
    assert.deepEqual(streamed, ['c0']);
    assert.deepEqual(seen, [a, b, c, a, b], 'on("$/stream") still sees every chunk');
  });
});

describe('call() on a streaming method, against the real host', () => {
  let client;
  /** Request ids the client sent, by method, and the replies it got, by id (trace). */
  const sentIds = [];
  const replies = new Map();
  const replyWaiters = new Map();

  before(async () => {
    client = await spawnSidecar(supportAppOptions('stream_app:app', {
      trace: (direction, message) => {
        if (direction === 'send' && message.id !== undefined) sentIds.push(message.id);
        if (direction === 'receive' && message.id !== undefined && !message.method) {
          replies.set(message.id, message);
          replyWaiters.get(message.id)?.(message);
        }
      },
    }));
  });

  after(async () => {
    if (client && !client.closed) await client.close();
  });

  /** The host's reply to request `id`, even one the client gave up on. */
  const replyTo = (id) => (replies.has(id) ? Promise.resolve(replies.get(id)) : new Promise((resolve) => replyWaiters.set(id, resolve)));

  test('every item in order, across chunks; named or positional params', async () => {
    assert.deepEqual(await client.call('data.rows', { n: 250 }), rows(250));
    assert.deepEqual(await client.call('data.rows', [120]), rows(120));
  });

  test("with meta: the items and the closing reply's $meta", async () => {
    const { result, meta } = await client.call('data.rows', { n: 101 }, { meta: true });
    assert.deepEqual(result, rows(101));
    assert.equal(typeof meta.handlerMs, 'number');
  });

  test("a handler that raises mid-stream rejects with the host's error", async () => {
    await assert.rejects(
      client.call('data.rows', { n: 1000, fail_at: 150 }),
      (e) => e instanceof RpcError && e.code === 1001 && e.data.at === 150,
    );
  });

  test('aborting mid-stream cancels it on the host: the generator is closed', async () => {
    await client.call('data.reset');
    const controller = new AbortController();
    const off = client.on('$/stream', () => controller.abort());
    const call = client.call('data.rows', { n: 1_000_000, delay: 0.001 }, { signal: controller.signal });
    const id = sentIds.at(-1);
    await assert.rejects(call, CallCancelledError);
    off();
    // The host replies to the cancelled call once the generator's finally ran.
    assert.equal((await replyTo(id)).error.code, -32800);
    assert.equal((await client.call('data.state')).closed, 1);
  });

  test('the timeout covers the whole stream', async () => {
    await assert.rejects(client.call('data.rows', { n: 1_000_000, delay: 0.001 }, { timeout: 300 }), CallTimeoutError);
  });

  test('a stream with no items resolves with []: the host\'s $/ready lists its streaming methods', async () => {
    assert.ok(client.ready.streams.includes('data.rows'));
    assert.deepEqual(await client.call('data.rows', { n: 0 }), []);
    assert.deepEqual(await client.call('data.rows', { n: 0 }, { meta: true }).then((r) => r.result), []);
  });

  test('through a Supervisor: the items too', async () => {
    const bridge = new Supervisor({
      start: () =>
        spawnSidecar(supportAppOptions('stream_app:app')),
      health: false,
    });
    try {
      await bridge.start();
      assert.deepEqual(await bridge.call('data.rows', { n: 205 }), rows(205));
    } finally {
      await bridge.close();
    }
  });
});
