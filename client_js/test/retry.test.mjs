// Retries of idempotent calls (src/retry.js): the policy as pure functions, then RpcClient and
// the Supervisor against the real host (test-support/retry_app.py), whose methods refuse a set
// number of tries with -32003/-32004/-32005 and then answer. Every wait goes through an injected
// sleeper that records it and returns at once, and the jitter through an injected random source,
// so no test waits on the clock except the one against a real rate limit.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  CallCancelledError,
  ConnectionClosedError,
  ErrorCodes,
  RpcClient,
  RpcError,
  SidecarCrashedError,
  Supervisor,
  spawnSidecar,
} from '../src/node.js';
import { RETRY_DEFAULTS, backoffDelay, clientRetry, retryPolicy, retryWait } from '../src/retry.js';
import { supportAppOptions } from '../test-support/host.mjs';

const { RateLimited, CircuitOpen, ServerBusy } = ErrorCodes;

/** `hooks`: a sleeper that records each wait in `waits` and returns at once, and a fixed random source. */
function instant(random = 0.5) {
  const waits = [];
  return { waits, hooks: { random: () => random, sleep: (ms) => void waits.push(ms) } };
}

const refusal = (code, retryAfter) => new RpcError(code, 'refused', retryAfter === undefined ? {} : { retry_after: retryAfter });

describe('the policy', () => {
  test('backoff: full jitter under a ceiling that doubles from delay up to maxDelay', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((attempt) => backoffDelay(100, 1000, attempt, () => 0.5)),
      [50, 100, 200, 400, 500],
    );
    assert.equal(backoffDelay(100, 1000, 3, () => 0), 0);
    assert.equal(backoffDelay(100, 1000, 10_000, () => 0.999999), 999);
  });

  test('retryWait: only -32003, -32004 and -32005, within attempts; retry_after plus jitter, capped', () => {
    const policy = retryPolicy(null, 'm', { attempts: 3, delay: 100, maxDelay: 2000, random: () => 0.5 });
    for (const code of [RateLimited, CircuitOpen, ServerBusy]) assert.equal(retryWait(policy, 1, refusal(code)), 50);
    assert.equal(retryWait(policy, 2, refusal(ServerBusy)), 100, 'the backoff doubles');
    assert.equal(retryWait(policy, 3, refusal(ServerBusy)), undefined, 'three tries, no fourth');
    for (const error of [new RpcError(ErrorCodes.InternalError, 'x'), new RpcError(1001, 'app'), new ConnectionClosedError(), new Error('x')]) {
      assert.equal(retryWait(policy, 1, error), undefined, String(error));
    }
    assert.equal(retryWait(policy, 1, refusal(RateLimited, 0.25)), 300, '250 ms the host asks for, plus 50 of jitter');
    assert.equal(retryWait(policy, 1, refusal(RateLimited, 0.0001)), 51, 'rounded up to whole milliseconds');
    assert.equal(retryWait(policy, 2, refusal(CircuitOpen, 1.95)), 2000, 'at most maxDelay');
    assert.equal(retryWait(policy, 1, refusal(CircuitOpen, 2.5)), undefined, 'a retry_after past maxDelay is not waited for');
    assert.equal(retryWait(policy, 1, refusal(RateLimited, 'soon')), 50, 'a retry_after that is no number: the backoff');
  });

  test('retryPolicy: the call over the method over the client over the defaults; false turns it off', () => {
    const client = clientRetry({ attempts: 5, delay: 10, methods: { 'a.get': { attempts: 7 }, 'a.poll': false, 'a.on': true } }, 'test');
    const pick = (policy) => policy && { attempts: policy.attempts, delay: policy.delay, maxDelay: policy.maxDelay };
    assert.equal(retryPolicy(null, 'x', undefined), null, 'nothing configured: no retries');
    assert.deepEqual(pick(retryPolicy(null, 'x', true)), { attempts: 3, delay: 100, maxDelay: 5000 });
    assert.deepEqual(pick(retryPolicy(client, 'x', undefined)), { attempts: 5, delay: 10, maxDelay: 5000 });
    assert.deepEqual(pick(retryPolicy(client, 'a.get', undefined)), { attempts: 7, delay: 10, maxDelay: 5000 });
    assert.deepEqual(pick(retryPolicy(client, 'a.get', { delay: 1 })), { attempts: 7, delay: 1, maxDelay: 5000 });
    assert.deepEqual(pick(retryPolicy(client, 'a.on', undefined)), { attempts: 5, delay: 10, maxDelay: 5000 });
    assert.equal(retryPolicy(client, 'a.poll', undefined), false);
    assert.deepEqual(pick(retryPolicy(client, 'a.poll', true)), { attempts: 5, delay: 10, maxDelay: 5000 }, 'the call has the last word');
    assert.equal(retryPolicy(client, 'a.get', false), false);
    assert.equal(RETRY_DEFAULTS.attempts, 3);
  });

  test('bad options are refused with a TypeError naming the field', async () => {
    assert.throws(() => new RpcClient({ onMessage() {}, onClose() {} }, { retry: 3 }), /retry must be an options object/);
    assert.throws(() => clientRetry({ attempts: 0 }, 't'), /retry\.attempts must be a positive integer/);
    assert.throws(() => clientRetry({ delay: -1 }, 't'), /retry\.delay/);
    assert.throws(() => clientRetry({ sleep: 5 }, 't'), /retry\.sleep must be a function/);
    assert.throws(() => clientRetry({ methods: { x: { tries: 2 } } }, 't'), /retry\.methods\["x"\] has unknown option\(s\): tries/);
    assert.throws(() => new Supervisor({ start: () => new Promise(() => {}), retry: 'yes' }), /Supervisor: retry/);
    const client = new RpcClient({ send() {}, onMessage() {}, onClose() {}, close() {} });
    await assert.rejects(client.call('x', {}, { retry: { maxDelay: 'long' } }), /retry\.maxDelay/);
    await assert.rejects(client.call('x', {}, { idempotent: 'yes' }), /idempotent must be true or false/);
  });
});

describe('RpcClient against the real host', () => {
  let client;
  const key = () => randomUUID();
  const tries = (k) => client.call('refuse.tries', { key: k });

  before(async () => {
    client = await spawnSidecar(supportAppOptions('retry_app:app'));
  });

  after(async () => {
    if (client && !client.closed) await client.close();
  });

  test("the host's $/ready lists the idempotent methods the client goes by", () => {
    assert.ok(client.ready.idempotent.includes('refuse.read'));
    assert.ok(!client.ready.idempotent.includes('refuse.write'));
  });

  test('each refusal is tried again after retry_after plus jitter, until the host answers', async () => {
    for (const code of [RateLimited, CircuitOpen]) {
      const k = key();
      const clock = instant(0);
      const result = await client.call('refuse.read', { key: k, times: 2, code, retry_after: 0.25 }, { retry: { attempts: 3, ...clock.hooks } });
      assert.equal(result, 3, 'answered on the third try');
      assert.deepEqual(clock.waits, [250, 250]);
    }
  });

  test('a refusal without retry_after (server busy) waits the exponential backoff', async () => {
    const k = key();
    const clock = instant(0.5);
    const result = await client.call('refuse.read', { key: k, times: 3, code: ServerBusy }, { retry: { attempts: 4, delay: 100, ...clock.hooks } });
    assert.equal(result, 4);
    assert.deepEqual(clock.waits, [50, 100, 200]);
  });

  test('attempts caps the tries: the last refusal rejects the call', async () => {
    const k = key();
    const clock = instant();
    await assert.rejects(
      client.call('refuse.read', { key: k, times: 5 }, { retry: { attempts: 3, ...clock.hooks } }),
      (e) => e instanceof RpcError && e.code === RateLimited,
    );
    assert.equal(await tries(k), 3);
    assert.equal(clock.waits.length, 2);
  });

  test('a method that is not idempotent is never retried, unless the call says it is', async () => {
    const k = key();
    const clock = instant();
    await assert.rejects(client.call('refuse.write', { key: k, times: 1 }, { retry: { attempts: 5, ...clock.hooks } }), RpcError);
    assert.equal(await tries(k), 1);
    assert.deepEqual(clock.waits, []);
    assert.equal(await client.call('refuse.write', { key: k, times: 1 }, { retry: { attempts: 5, ...clock.hooks } }), 2, 'the refusal was only the first');
    const forced = key();
    assert.equal(await client.call('refuse.write', { key: forced, times: 1 }, { idempotent: true, retry: { ...clock.hooks } }), 2);
    await assert.rejects(client.call('refuse.read', { key: key(), times: 1 }, { idempotent: false, retry: { ...clock.hooks } }), RpcError);
  });

  test('no retry option, or retry: false: one try', async () => {
    const k = key();
    await assert.rejects(client.call('refuse.read', { key: k, times: 1 }), RpcError);
    await assert.rejects(client.call('refuse.read', { key: k, times: 2 }, { retry: false }), RpcError);
    assert.equal(await tries(k), 2);
  });

  test('errors other than the three refusals are final', async () => {
    const k = key();
    await assert.rejects(client.call('refuse.read', { key: k, times: 1, code: 1001 }, { retry: { attempts: 5, ...instant().hooks } }), (e) => e.code === 1001);
    assert.equal(await tries(k), 1);
  });

  test('a retry_after past maxDelay, or a wait that would end past the timeout, rejects at once', async () => {
    const clock = instant();
    const far = key();
    await assert.rejects(
      client.call('refuse.read', { key: far, times: 1, retry_after: 60 }, { retry: { maxDelay: 10_000, ...clock.hooks } }),
      (e) => e.code === RateLimited && e.data.retry_after === 60,
    );
    const late = key();
    await assert.rejects(
      client.call('refuse.read', { key: late, times: 1, retry_after: 5 }, { timeout: 2000, retry: { maxDelay: 10_000, ...clock.hooks } }),
      (e) => e.code === RateLimited,
    );
    assert.deepEqual([await tries(far), await tries(late), clock.waits], [1, 1, []]);
  });

  test('aborting during a wait rejects with CallCancelledError and stops retrying', async () => {
    const k = key();
    const controller = new AbortController();
    let waiting;
    const asleep = new Promise((resolve) => {
      waiting = resolve;
    });
    const sleep = (ms, signal) => {
      waiting(ms);
      return new Promise((resolve) => signal.addEventListener('abort', resolve));
    };
    const call = client.call('refuse.read', { key: k, times: 1, retry_after: 1 }, { signal: controller.signal, retry: { sleep, random: () => 0 } });
    assert.equal(await asleep, 1000);
    controller.abort();
    await assert.rejects(call, CallCancelledError);
    assert.equal(await tries(k), 1);
  });

  test('a real rate limit: concurrent calls all get through with the default sleeper', async () => {
    const calls = Array.from({ length: 4 }, () => client.call('limited', undefined, { retry: { attempts: 20, delay: 5, maxDelay: 1000 } }));
    assert.deepEqual(await Promise.all(calls), ['ok', 'ok', 'ok', 'ok']);
    const metrics = await client.call('rpc.metrics');
    assert.ok(metrics.methods.limited.rateLimited >= 1, 'the host refused some of them: the retries got them through');
    assert.equal(metrics.methods.limited.calls - metrics.methods.limited.rateLimited, 4);
  });
});

describe('RpcClient: the client-wide policy', () => {
  /** Plays a host that refuses every call with -32005 and lists `idempotent` in its ready info. */
  function refusingClient(retry) {
    const sent = [];
    let deliver;
    const closeListeners = new Set();
    const transport = {
      send: (message) => {
        sent.push(message);
        if (message.id !== undefined) {
          queueMicrotask(() => deliver({ jsonrpc: '2.0', id: message.id, error: { code: ServerBusy, message: 'Server busy' } }));
        }
      },
      onMessage: (listener) => {
        deliver = listener;
        return () => {};
      },
      onClose: (listener) => (closeListeners.add(listener), () => closeListeners.delete(listener)),
      close() {},
    };
    const client = new RpcClient(transport, { retry });
    client.ready = { idempotent: ['a.get', 'a.poll'] };
    const count = (method) => sent.filter((m) => m.method === method).length;
    const disconnect = () => closeListeners.forEach((listener) => listener(new ConnectionClosedError('the host exited')));
    return { client, count, disconnect };
  }

  test('the connection closing during a wait rejects the call at once with ConnectionClosedError', async () => {
    let asleep;
    const sleeping = new Promise((resolve) => {
      asleep = resolve;
    });
    // A wait that ends only when its signal aborts.
    const sleep = (ms, signal) => new Promise((resolve) => (asleep(), signal.addEventListener('abort', resolve)));
    const { client, count, disconnect } = refusingClient({ sleep });
    const call = client.call('a.get', {});
    await sleeping;
    disconnect();
    await assert.rejects(call, (e) => e instanceof ConnectionClosedError && /the host exited/.test(e.message));
    assert.equal(count('a.get'), 1);
  });

  test("applies to the host's idempotent methods, with per-method overrides", async () => {
    const clock = instant();
    const { client, count } = refusingClient({ attempts: 2, ...clock.hooks, methods: { 'a.get': { attempts: 4 }, 'a.poll': false } });
    for (const method of ['a.get', 'a.poll', 'a.set']) await assert.rejects(client.call(method, {}), RpcError);
    assert.deepEqual([count('a.get'), count('a.poll'), count('a.set')], [4, 1, 1]);
    await assert.rejects(client.call('a.get', {}, { retry: false }), RpcError);
    await assert.rejects(client.call('a.set', {}, { idempotent: true }), RpcError);
    assert.deepEqual([count('a.get'), count('a.set')], [5, 3], 'retry: false is one try; idempotent: true takes the client policy (2)');
  });
});

describe('Supervisor', () => {
  const spawnOptions = supportAppOptions('retry_app:app');

  test('retries refusals of idempotent calls on the real host, with the supervisor-wide policy', async () => {
    const clock = instant(0);
    const bridge = new Supervisor({ start: () => spawnSidecar(spawnOptions), health: false, retry: { attempts: 3, ...clock.hooks } });
    try {
      await bridge.start();
      const k = randomUUID();
      assert.equal(await bridge.call('refuse.read', { key: k, times: 2, retry_after: 0.01 }), 3);
      assert.deepEqual(clock.waits, [10, 10]);
      const w = randomUUID();
      await assert.rejects(bridge.call('refuse.write', { key: w, times: 1 }), (e) => e.code === RateLimited);
      assert.equal(await bridge.call('refuse.tries', { key: w }), 1, 'never twice for a method that is not idempotent');
      const capped = randomUUID();
      await assert.rejects(bridge.call('refuse.read', { key: capped, times: 9 }), (e) => e.code === RateLimited);
      assert.equal(await bridge.call('refuse.tries', { key: capped }), 3);
      const { result, meta } = await bridge.call('refuse.read', { key: randomUUID(), times: 1 }, { meta: true });
      assert.equal(result, 2);
      assert.equal(typeof meta.handlerMs, 'number');
    } finally {
      await bridge.close();
    }
  });

  /** In-memory hosts: each an RpcClient whose transport answers with `reply(message, hostIndex)`. */
  function fakeHosts(reply) {
    const hosts = [];
    const start = () => {
      const index = hosts.length;
      const messageListeners = new Set();
      const closeListeners = new Set();
      const host = { sent: [], closed: false };
      host.exit = () => {
        if (host.closed) return;
        host.closed = true;
        const error = new ConnectionClosedError('fake host killed');
        error.signal = 'SIGKILL';
        for (const listener of closeListeners) listener(error);
      };
      const transport = {
        send(message) {
          if (host.closed) throw new ConnectionClosedError('gone');
          host.sent.push(message);
          const answer = message.id === undefined ? undefined : reply(message, index);
          if (answer) queueMicrotask(() => !host.closed && messageListeners.forEach((l) => l({ jsonrpc: '2.0', id: message.id, ...answer })));
        },
        onMessage: (listener) => (messageListeners.add(listener), () => messageListeners.delete(listener)),
        onClose: (listener) => (closeListeners.add(listener), () => closeListeners.delete(listener)),
        close: () => (host.exit(), 0),
      };
      host.client = new RpcClient(transport);
      host.client.ready = { idempotent: ['a.get'] };
      host.client.kill = host.exit;
      hosts.push(host);
      return Promise.resolve(host.client);
    };
    return { hosts, start };
  }

  test('retry.attempts also caps retries across crashes; retry: false turns them off', async () => {
    // The first two hosts never answer; the test kills them.
    const { hosts, start } = fakeHosts((message, index) => (index < 2 ? undefined : { result: 'ok' }));
    const bridge = new Supervisor({ start, restart: 'immediate', health: false, retry: { attempts: 2 } });
    await bridge.start();
    const capped = bridge.call('a.get', {});
    const off = bridge.call('a.get', {}, { retry: false });
    const ready = () => new Promise((resolve) => {
      const stop = bridge.onState((event) => event.state === 'ready' && (stop(), resolve()));
    });
    let next = ready();
    hosts[0].exit();
    await assert.rejects(off, (e) => e instanceof SidecarCrashedError && /retry is off for this call/.test(e.message));
    await next;
    assert.equal(hosts[1].sent.filter((m) => m.method === 'a.get').length, 1, 'the capped call went to the second host');
    next = ready();
    hosts[1].exit();
    await assert.rejects(capped, (e) => e instanceof SidecarCrashedError && e.idempotent && /tried 2 time\(s\)/.test(e.message));
    await next;
    assert.equal(await bridge.call('a.get', {}), 'ok', 'the third host answers');
    await bridge.close();
  });

  test('a call waiting to retry goes to the next host if this one dies; close() rejects one still waiting', async () => {
    const { hosts, start } = fakeHosts((message, index) =>
      index === 0 ? { error: { code: ServerBusy, message: 'Server busy' } } : { result: `host ${index}` },
    );
    let wake;
    let asleepFirst;
    const sleepingFirst = new Promise((resolve) => {
      asleepFirst = resolve;
    });
    const sleep = () => new Promise((resolve) => {
      wake = resolve;
      asleepFirst();
    });
    const bridge = new Supervisor({ start, restart: 'immediate', health: false, retry: { attempts: 3, sleep } });
    await bridge.start();
    const call = bridge.call('a.get', {});
    await sleepingFirst;
    const restarted = new Promise((resolve) => {
      const stop = bridge.onState((event) => event.state === 'ready' && (stop(), resolve()));
    });
    hosts[0].exit();
    await restarted;
    wake();
    assert.equal(await call, 'host 1');

    const { start: busyStart } = fakeHosts(() => ({ error: { code: ServerBusy, message: 'Server busy' } }));
    let asleep;
    const sleeping = new Promise((resolve) => {
      asleep = resolve;
    });
    const busy = new Supervisor({ start: busyStart, health: false, retry: { sleep: () => (asleep(), new Promise(() => {})) } });
    await busy.start();
    const waiting = busy.call('a.get', {});
    await sleeping;
    await busy.close();
    await assert.rejects(waiting, (e) => e instanceof ConnectionClosedError && /supervisor was closed/.test(e.message));
    await bridge.close();
  });
});
