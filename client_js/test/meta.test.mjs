// Reply metadata: call(method, params, { meta: true }) sends `$meta.info` and resolves with
// `{ result, meta }`. The wire details against an in-memory host, then the real host
// (test-support/meta_app.py) for handlerMs, cached and shared (a single-flight hit).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RpcClient, RpcError, Supervisor, spawnSidecar } from '../src/node.js';
import { FakeTransport } from '../test-support/fake-transport.mjs';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

const supportDir = fileURLToPath(new URL('../test-support/', import.meta.url));


describe('meta on the wire', () => {
  test('asks with $meta.info, merged into a $meta of its own, and resolves with { result, meta }', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const named = client.call('notes.get', { id: 7, $meta: { caller: 'alice' } }, { meta: true });
    const none = client.call('notes.count', undefined, { meta: true });
    const plain = client.call('notes.get', { id: 8 });
    assert.deepEqual(
      transport.sent.map((m) => m.params),
      [{ id: 7, $meta: { caller: 'alice', info: true } }, { $meta: { info: true } }, { id: 8 }],
    );
    const [a, b, c] = transport.sent.map((m) => m.id);
    transport.receive({ jsonrpc: '2.0', id: a, result: { title: 'x' }, $meta: { handlerMs: 1.5, cached: true, shared: true } });
    transport.receive({ jsonrpc: '2.0', id: b, result: 3, $meta: { handlerMs: 0.1 } });
    transport.receive({ jsonrpc: '2.0', id: c, result: { title: 'y' }, $meta: { handlerMs: 9 } });
    assert.deepEqual(await named, { result: { title: 'x' }, meta: { handlerMs: 1.5, cached: true, shared: true } });
    assert.deepEqual(await none, { result: 3, meta: { handlerMs: 0.1 } });
    assert.deepEqual(await plain, { title: 'y' }, 'without meta: true the result alone, whatever the reply holds');
  });

  test('a reply without $meta resolves with meta undefined; an error reply keeps its $meta on the RpcError', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const bare = client.call('x', {}, { meta: true });
    const failed = client.call('y', {}, { meta: true });
    const [a, b] = transport.sent.map((m) => m.id);
    transport.receive({ jsonrpc: '2.0', id: a, result: null });
    transport.receive({ jsonrpc: '2.0', id: b, error: { code: 1001, message: 'no' }, $meta: { handlerMs: 2 } });
    assert.deepEqual(await bare, { result: null, meta: undefined });
    await assert.rejects(failed, (e) => e instanceof RpcError && e.code === 1001 && e.meta.handlerMs === 2);
  });

  test('positional params with meta, or a meta that is not a boolean, reject at once and send nothing', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    await assert.rejects(client.call('demo.add', [1, 2], { meta: true }), /positional params cannot carry \$meta/);
    await assert.rejects(client.call('demo.add', {}, { meta: 'yes' }), /meta must be true or false/);
    assert.deepEqual(transport.sent, []);
    client.call('demo.add', [1, 2], { meta: false });
    assert.deepEqual(transport.sent[0].params, [1, 2]);
  });
});

describe('meta against the real host', () => {
  let client;
  let cacheDir;
  const spawnOptions = () => ({
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'meta_app:app'],
    cwd: supportDir,
    // A fresh cache directory: replies cached by an earlier run would read as hits.
    env: { PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(delimiter), BRIDGE_CACHE_DIR: cacheDir },
    readyTimeout: 20_000,
    onStderr: null,
  });

  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'bridge-meta-'));
    client = await spawnSidecar(spawnOptions());
  });

  after(async () => {
    if (client && !client.closed) await client.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  // First: the gate is shut until this test opens it.
  test('concurrent identical calls share one computation: the follower says cached and shared', async () => {
    const leader = client.call('lookup', { key: 'flight' }, { meta: true });
    const follower = client.call('lookup', { key: 'flight' }, { meta: true });
    // Sent after both: the host starts calls in order, so both wait in the flight when it opens.
    assert.equal(await client.call('open_gate'), true);
    const [first, second] = await Promise.all([leader, follower]);
    assert.equal(first.result, 'FLIGHT');
    assert.equal(second.result, 'FLIGHT');
    assert.equal(first.meta.cached, false);
    assert.equal(first.meta.shared, undefined);
    assert.equal(second.meta.cached, true);
    assert.equal(second.meta.shared, true);
    for (const { meta } of [first, second]) assert.ok(typeof meta.handlerMs === 'number' && meta.handlerMs >= 0, meta);
    assert.equal(await client.call('computed', { key: 'flight' }), 1, 'the handler ran once for both');
  });

  test('a miss then a hit: cached false, then cached true and not shared', async () => {
    const miss = await client.call('lookup', { key: 'hit' }, { meta: true });
    const hit = await client.call('lookup', { key: 'hit' }, { meta: true });
    assert.deepEqual([miss.result, miss.meta.cached, 'shared' in miss.meta], ['HIT', false, false]);
    assert.deepEqual([hit.result, hit.meta.cached, 'shared' in hit.meta], ['HIT', true, false]);
    assert.equal(await client.call('computed', { key: 'hit' }), 1);
  });

  test('a method without a cache says only how long the host spent on it; no params is fine', async () => {
    const { result, meta } = await client.call('open_gate', undefined, { meta: true });
    assert.equal(result, true);
    assert.deepEqual(Object.keys(meta), ['handlerMs']);
    assert.equal(await client.call('open_gate'), true, 'a plain call still resolves with the result alone');
  });

  test("an error reply's meta is on the RpcError", async () => {
    await assert.rejects(
      client.call('fail', {}, { meta: true }),
      (e) => e instanceof RpcError && e.code === 1001 && typeof e.meta?.handlerMs === 'number',
    );
  });

  test('rpc.ping is answered before any middleware: no $meta, so meta is undefined', async () => {
    assert.deepEqual(await client.call('rpc.ping', undefined, { meta: true }), { result: 'pong', meta: undefined });
  });

  test('through a Supervisor: the same { result, meta }', async () => {
    const bridge = new Supervisor({ start: () => spawnSidecar(spawnOptions()), health: false });
    try {
      await bridge.start();
      await bridge.call('open_gate');
      const { result, meta } = await bridge.call('lookup', { key: 'supervised' }, { meta: true });
      assert.equal(result, 'SUPERVISED');
      assert.equal(meta.cached, false);
      assert.equal(await bridge.call('lookup', { key: 'supervised' }), 'SUPERVISED');
      await assert.rejects(bridge.call('lookup', ['supervised'], { meta: true }), TypeError);
    } finally {
      await bridge.close();
    }
  });
});
