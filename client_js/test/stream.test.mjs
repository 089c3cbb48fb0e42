// RpcClient.stream(): a stand-in host for the wire details, then the real host
// (test-support/stream_app.py) for order, progress, errors, cancellation and pacing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CallCancelledError,
  CallTimeoutError,
  ConnectionClosedError,
  RpcClient,
  RpcError,
  SidecarCrashedError,
  spawnSidecar,
  superviseSidecar,
} from '../src/node.js';
import { FakeTransport } from '../test-support/fake-transport.mjs';
import { supportAppOptions } from '../test-support/host.mjs';

describe('stream() on the wire', () => {
  test('merges $meta.stream.window into named params and grants one credit per chunk taken', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const progress = [];
    const stream = client.stream('data.rows', { n: 3, $meta: { caller: 'w1' } }, { window: 2, onProgress: (p) => progress.push(p) });
    const request = transport.sent[0];
    assert.deepEqual(request.params, { n: 3, $meta: { caller: 'w1', stream: { window: 2 } } });
    const id = request.id;
    transport.chunk(id, 0, ['a', 'b'], 2, 3);
    transport.chunk(id, 1, ['c'], 3, 3);
    assert.equal(transport.credits(id), 0, 'nothing taken yet');
    assert.deepEqual(await stream.next(), { done: false, value: ['a', 'b'] });
    assert.equal(transport.credits(id), 1);
    assert.deepEqual(stream.progress, { seq: 0, done: 2, total: 3 });
    transport.receive({ jsonrpc: '2.0', id, result: { items: 3, chunks: 2 } });
    assert.deepEqual(await stream.next(), { done: false, value: ['c'] });
    assert.equal(transport.credits(id), 1, 'no credit once the reply came');
    assert.deepEqual(await stream.next(), { done: true, value: { items: 3, chunks: 2 } });
    assert.deepEqual(await stream.result, { items: 3, chunks: 2 });
    assert.deepEqual(progress, [
      { seq: 0, done: 2, total: 3 },
      { seq: 1, done: 3, total: 3 },
    ]);
    assert.equal(transport.sent.filter((m) => m.method === '$/cancelRequest').length, 0);
  });

  test('positional params go as they are and are not paced', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const stream = client.stream('data.rows', [3]);
    const { id, params } = transport.sent[0];
    assert.deepEqual(params, [3]);
    transport.chunk(id, 0, [1, 2, 3], 3);
    transport.receive({ jsonrpc: '2.0', id, result: { items: 3, chunks: 1 } });
    const seen = [];
    for await (const items of stream) seen.push(...items);
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(transport.credits(id), 0);
  });

  test('no params become { $meta } alone', () => {
    const transport = new FakeTransport();
    new RpcClient(transport).stream('notes.export', undefined, { window: 4 });
    assert.deepEqual(transport.sent[0].params, { $meta: { stream: { window: 4 } } });
  });

  test('an error reply is thrown after the chunks sent before it', async () => {
    const transport = new FakeTransport();
    const stream = new RpcClient(transport).stream('data.rows', {});
    const { id } = transport.sent[0];
    transport.chunk(id, 0, ['a'], 1);
    transport.receive({ jsonrpc: '2.0', id, error: { code: 1001, message: 'broke', data: { at: 1 } } });
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const items of stream) seen.push(...items);
      })(),
      (error) => error instanceof RpcError && error.code === 1001,
    );
    assert.deepEqual(seen, ['a']);
    await assert.rejects(stream.result, RpcError);
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
  });

  test('break cancels the call on the host; result rejects with CallCancelledError', async () => {
    const transport = new FakeTransport();
    const stream = new RpcClient(transport).stream('data.rows', {});
    const { id } = transport.sent[0];
    transport.chunk(id, 0, ['a'], 1);
    transport.chunk(id, 1, ['b'], 2);
    for await (const items of stream) {
      assert.deepEqual(items, ['a']);
      break;
    }
    assert.deepEqual(transport.sent.at(-1), { jsonrpc: '2.0', method: '$/cancelRequest', params: { id } });
    await assert.rejects(stream.result, CallCancelledError);
    // Late chunks and the late reply are ignored.
    transport.chunk(id, 2, ['c'], 3);
    transport.receive({ jsonrpc: '2.0', id, error: { code: -32800, message: 'Request cancelled' } });
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
  });

  test('a waiting next() settles when the signal aborts, the timeout passes or the connection closes', async () => {
    const transport = new FakeTransport();
    const client = new RpcClient(transport);
    const controller = new AbortController();
    const aborted = client.stream('data.rows', {}, { signal: controller.signal });
    const waiting = aborted.next();
    controller.abort();
    await assert.rejects(waiting, CallCancelledError);
    assert.equal(transport.sent.at(-1).method, '$/cancelRequest');

    const timed = client.stream('data.rows', {}, { timeout: 10 });
    await assert.rejects(timed.next(), CallTimeoutError);

    const open = client.stream('data.rows', {});
    const pending = open.next();
    transport.disconnect(new Error('gone'));
    await assert.rejects(pending, ConnectionClosedError);
    assert.throws(() => client.stream('x', {}, { window: 0 }), TypeError);
    await assert.rejects(client.stream('x', {}).next(), ConnectionClosedError);
  });
});

describe('stream() against the real host', () => {
  let client;

  before(async () => {
    client = await spawnSidecar(supportAppOptions('stream_app:app'));
  });

  after(async () => {
    if (client && !client.closed) await client.close();
  });

  test('every item in order, with progress, and the reply as the result', async () => {
    const progress = [];
    const stream = client.stream('data.rows', { n: 1050 }, { window: 4, onProgress: (p) => progress.push(p) });
    const items = [];
    for await (const chunk of stream) items.push(...chunk);
    assert.equal(items.length, 1050);
    items.forEach((item, i) => assert.equal(item, `${String(i).padStart(8, '0')}xxxxxxxxxx`));
    assert.deepEqual(await stream.result, { items: 1050, chunks: 11 });
    assert.deepEqual(
      progress.map((p) => [p.seq, p.done, p.total]),
      Array.from({ length: 11 }, (_, seq) => [seq, Math.min(1050, (seq + 1) * 100), 1050]),
    );
    assert.deepEqual(stream.progress, { seq: 10, done: 1050, total: 1050 });
  });

  test('positional params stream too (unpaced)', async () => {
    const items = [];
    for await (const chunk of client.stream('data.rows', [250, 2])) items.push(...chunk);
    assert.deepEqual(items.slice(0, 2), ['00000000xx', '00000001xx']);
    assert.equal(items.length, 250);
  });

  test('an error mid-stream comes after the items before it', async () => {
    const items = [];
    const error = await (async () => {
      try {
        for await (const chunk of client.stream('data.rows', { n: 1000, fail_at: 250 })) items.push(...chunk);
      } catch (caught) {
        return caught;
      }
    })();
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, 1001);
    assert.deepEqual(error.data, { at: 250 });
    assert.equal(items.length, 250); // every item yielded before the error, the last chunk a partial one
  });

  test('break closes the generator on the host, which stops producing', async () => {
    await client.call('data.reset');
    let chunks = 0;
    for await (const chunk of client.stream('data.rows', { n: 1_000_000 }, { window: 2 })) {
      assert.equal(chunk.length, 100);
      if (++chunks === 3) break;
    }
    // The finally of the generator runs once the host handles $/cancelRequest.
    let state;
    for (let i = 0; i < 50; i++) {
      state = await client.call('data.state');
      if (state.closed === 1) break;
      await sleep(20);
    }
    assert.equal(state.closed, 1);
    // Paced: 3 chunks taken + a window of 2 + the one being built when credit ran out.
    assert.ok(state.pulled <= (3 + 2 + 1) * 100, `the generator ran ahead: ${state.pulled} items`);
  });

  test('aborting the signal mid-stream cancels it on the host', async () => {
    await client.call('data.reset');
    const controller = new AbortController();
    const seen = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of client.stream('data.rows', { n: 1_000_000, delay: 0.001 }, { signal: controller.signal })) {
          seen.push(chunk);
          if (seen.length === 1) controller.abort();
        }
      })(),
      CallCancelledError,
    );
    let state;
    for (let i = 0; i < 50; i++) {
      state = await client.call('data.state');
      if (state.closed === 1) break;
      await sleep(20);
    }
    assert.equal(state.closed, 1);
  });

  test("a slow consumer keeps the host's memory flat", async (t) => {
    if (process.platform !== 'linux') return t.skip('reads /proc');
    const pid = client.ready.pid;
    const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
    // 100,000 items of ~1 kB: about 100 MB in 1,000 chunks of 100 kB.
    const n = 100_000;
    let baseline;
    let peak = 0;
    let received = 0;
    let chunks = 0;
    for await (const chunk of client.stream('data.rows', { n, width: 1000 }, { window: 4 })) {
      received += chunk.length;
      chunks++;
      if (chunks === 20) baseline = rssKb();
      if (chunks > 20) peak = Math.max(peak, rssKb());
      // Slower than the host: without pacing, the host would run far ahead of us.
      await sleep(1);
    }
    assert.equal(received, n);
    const growthMb = (peak - baseline) / 1024;
    t.diagnostic(`host VmRSS ${Math.round(baseline / 1024)} MB after 2 MB streamed, peak ${Math.round(peak / 1024)} MB over 100 MB (+${growthMb.toFixed(1)} MB)`);
    assert.ok(growthMb < 5, `host memory grew by ${growthMb.toFixed(1)} MB`);
  });
});

describe('stream() through a Supervisor', () => {
  let bridge;

  before(async () => {
    bridge = superviseSidecar(supportAppOptions('stream_app:app', {
      restart: 'immediate',
      health: false,
    }));
  });

  after(async () => {
    await bridge?.close();
  });

  test('a stream made before the host is ready waits for it, then streams', async () => {
    const stream = bridge.stream('data.rows', { n: 300 }, { window: 2 });
    const items = [];
    for await (const chunk of stream) items.push(...chunk);
    assert.equal(items.length, 300);
    assert.deepEqual(stream.progress, { seq: 2, done: 300, total: 300 });
    assert.deepEqual(await stream.result, { items: 300, chunks: 3 });
  });

  test('break cancels on the host', async () => {
    await bridge.call('data.reset');
    for await (const chunk of bridge.stream('data.rows', { n: 1_000_000 }, { window: 1 })) {
      assert.equal(chunk.length, 100);
      break;
    }
    let state;
    for (let i = 0; i < 50; i++) {
      state = await bridge.call('data.state');
      if (state.closed === 1) break;
      await sleep(20);
    }
    assert.equal(state.closed, 1);
  });

  test('a stream in flight when the host dies throws SidecarCrashedError and is not retried', async () => {
    await bridge.whenReady();
    const pid = bridge.ready.pid;
    const seen = [];
    const error = await (async () => {
      try {
        for await (const chunk of bridge.stream('data.rows', { n: 1_000_000 }, { window: 2 })) {
          seen.push(chunk);
          if (seen.length === 2) bridge.client.kill();
        }
      } catch (caught) {
        return caught;
      }
    })();
    assert.ok(error instanceof SidecarCrashedError, String(error));
    assert.equal(error.method, 'data.rows');
    assert.equal(error.signal, 'SIGKILL');
    assert.ok(seen.length >= 2 && seen.length <= 4, `${seen.length} chunks`);
    await bridge.whenReady();
    assert.notEqual(bridge.ready.pid, pid);
    // The new host never saw the stream.
    assert.deepEqual(await bridge.call('data.state'), { pulled: 0, closed: 0 });
  });

  test('return() right after stream() cancels it', async () => {
    await bridge.whenReady();
    const stream = bridge.stream('data.rows', { n: 1_000_000 }, { window: 1 });
    assert.deepEqual(await stream.return(), { done: true, value: undefined });
    await assert.rejects(stream.result, CallCancelledError);
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
    assert.equal(await bridge.call('data.reset'), true, 'the host still answers');
  });

  test('aborting while waiting for the host rejects at once', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(bridge.stream('data.rows', { n: 1 }, { signal: controller.signal }).next(), CallCancelledError);
  });
});
