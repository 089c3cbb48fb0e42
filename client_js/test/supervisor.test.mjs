// The Supervisor (src/supervisor.js): restart policy, queueing, retries and health checks.
// Policy tests run against in-memory fake hosts so every step is decided by the test; the rest
// spawn the real Python host, kill it with signals, and check what the app would see.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  CallCancelledError,
  CallTimeoutError,
  ConnectionClosedError,
  QueueFullError,
  RESTART_DEFAULTS,
  RpcClient,
  RpcError,
  SidecarCrashedError,
  Supervisor,
  restartDelay,
  superviseSidecar,
} from '../src/node.js';
import { nextEvent, processExists, pythonCommand, repoRoot } from '../test-support/host.mjs';

// ---------------------------------------------------------------------------------------------
// Helpers

/** A host played in memory: an RpcClient whose transport answers with `reply(request)`. */
class FakeHost {
  sent = [];
  closed = false;
  #messageListeners = new Set();
  #closeListeners = new Set();

  /** `reply` returns `{ result }`, `{ error }`, or undefined to never answer. */
  constructor({ idempotent = [], reply = defaultReply } = {}) {
    this.reply = reply;
    const transport = {
      send: (message) => this.#receive(message),
      onMessage: (listener) => addListener(this.#messageListeners, listener),
      onClose: (listener) => addListener(this.#closeListeners, listener),
      close: () => {
        this.exit({ exitCode: 0 });
        return 0;
      },
    };
    this.client = new RpcClient(transport, { onError: (error) => assert.fail(error) });
    this.client.ready = { name: 'fake', idempotent };
    this.client.stderrTail = ['fake stderr line'];
    this.client.kill = () => this.exit({ signal: 'SIGKILL' });
  }

  /** The process "ends": every pending call on this host's client rejects. */
  exit({ exitCode = null, signal = null } = {}) {
    if (this.closed) return;
    this.closed = true;
    const error = new ConnectionClosedError(`fake host ended (${signal ?? exitCode})`);
    error.exitCode = exitCode;
    error.signal = signal;
    for (const listener of this.#closeListeners) listener(error);
  }

  /** From now on sends fail, as writes to a dead process's stdin do before its exit is reported. */
  breakPipe() {
    this.broken = true;
  }

  requests(method) {
    return this.sent.filter((message) => message.method === method);
  }

  /** Send a notification to the client, as the host's ctx.notify() would. */
  emit(method, params) {
    for (const listener of this.#messageListeners) listener({ jsonrpc: '2.0', method, params });
  }

  #receive(message) {
    if (this.closed || this.broken) throw new ConnectionClosedError('fake host is gone');
    this.sent.push(message);
    if (message.id === undefined) return;
    const answer = this.reply(message);
    if (answer === undefined) return;
    queueMicrotask(() => {
      if (this.closed) return;
      for (const listener of this.#messageListeners) listener({ jsonrpc: '2.0', id: message.id, ...answer });
    });
  }
}

function addListener(set, listener) {
  set.add(listener);
  return () => set.delete(listener);
}

/** Methods starting with "hang." never answer; rpc.ping says pong; the rest echo their params. */
function defaultReply({ method, params }) {
  if (method.startsWith('hang.')) return undefined;
  if (method === 'rpc.ping') return { result: 'pong' };
  return { result: params ?? null };
}

/** A `start` for Supervisor that makes FakeHosts; `hosts` lists them in order. */
function fakeStarts(options) {
  const starts = {
    hosts: [],
    start: () => {
      const host = new FakeHost(options);
      starts.hosts.push(host);
      return Promise.resolve(host.client);
    },
    get last() {
      return starts.hosts.at(-1);
    },
  };
  return starts;
}

function recordStates(supervisor) {
  const events = [];
  supervisor.onState((event) => events.push(event));
  return events;
}

function nextState(supervisor, state) {
  return nextEvent((cb) => supervisor.onState(cb), (event) => event.state === state);
}

function settle(promise) {
  return promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

/** A supervised real host serving the built-in handlers (handlers/demo.py). */
function superviseHost(options = {}) {
  return superviseSidecar({
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'],
    cwd: repoRoot,
    readyTimeout: 20_000,
    onStderr: null,
    health: false,
    ...options,
  });
}

/** Alive and not a zombie: a dead child not yet reaped by its parent still answers signal 0. */
function alive(pid) {
  if (!processExists(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/** The safety net for processes we do not own: poll until `pid` is gone or `ms` pass. */
async function goneWithin(pid, ms) {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// The restart policy

test('restartDelay: never, immediate, fixed, and backoff with full jitter and a cap', () => {
  assert.equal(restartDelay('never', 1), Infinity);
  assert.equal(restartDelay('immediate', 7), 0);
  assert.equal(restartDelay({ policy: 'fixed', delay: 250 }, 1), 250);
  assert.equal(restartDelay({ policy: 'fixed', delay: 250 }, 9), 250);

  const backoff = { policy: 'backoff', delay: 100, maxDelay: 1000 };
  const almostOne = () => 0.999999;
  // The ceiling doubles per attempt from `delay` up to `maxDelay`: 100, 200, 400, 800, 1000, 1000.
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((attempt) => restartDelay(backoff, attempt, almostOne)),
    [99, 199, 399, 799, 999, 999],
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((attempt) => restartDelay(backoff, attempt, () => 0.5)),
    [50, 100, 200, 400, 500],
  );
  assert.equal(restartDelay(backoff, 3, () => 0), 0);
  assert.equal(restartDelay(backoff, 10_000, almostOne), 999, 'a huge attempt number stays at the cap');
  // Defaults: backoff from 500 ms.
  assert.equal(RESTART_DEFAULTS.policy, 'backoff');
  assert.equal(restartDelay(undefined, 1, () => 0.5), 250);
  assert.equal(restartDelay({}, 2, () => 0.5), 500);
});

test('bad options are refused when the supervisor is made', () => {
  const start = () => new Promise(() => {});
  assert.throws(() => new Supervisor({}), TypeError);
  assert.throws(() => new Supervisor({ start, restart: 'sometimes' }), /restart.policy/);
  assert.throws(() => new Supervisor({ start, restart: { delay: -1 } }), /restart.delay/);
  assert.throws(() => new Supervisor({ start, health: { timeout: 0 } }), /health.timeout/);
  assert.throws(() => new Supervisor({ start, health: { failures: 0 } }), /health.failures/);
  assert.throws(() => new Supervisor({ start, maxQueued: -1 }), /maxQueued/);
  assert.throws(() => superviseSidecar({}), /command/);
});

// ---------------------------------------------------------------------------------------------
// Policy, queueing and retries against fake hosts

test("policy 'never': a crash is final; in-flight calls reject with SidecarCrashedError", async () => {
  const fake = fakeStarts({ idempotent: ['hang.idempotent'] });
  const supervisor = new Supervisor({ start: fake.start, restart: 'never', health: false });
  const events = recordStates(supervisor);
  await supervisor.start();
  const retriable = settle(supervisor.call('hang.idempotent'));
  const once = settle(supervisor.call('hang.once', { n: 1 }));
  fake.last.exit({ exitCode: 3 });

  const { error: onceError } = await once;
  assert.ok(onceError instanceof SidecarCrashedError);
  assert.ok(onceError instanceof ConnectionClosedError);
  assert.equal(onceError.name, 'SidecarCrashedError');
  assert.equal(onceError.method, 'hang.once');
  assert.equal(onceError.exitCode, 3);
  assert.equal(onceError.signal, null);
  assert.equal(onceError.idempotent, false);
  assert.match(onceError.message, /hang\.once was in flight when the bridge host exited with code 3/);
  assert.match(onceError.message, /not retried because hang\.once is not idempotent/);

  const { error: retriableError } = await retriable;
  assert.ok(retriableError instanceof SidecarCrashedError);
  assert.equal(retriableError.idempotent, true);
  assert.match(retriableError.message, /could not be restarted/);

  assert.deepEqual(
    events.map((event) => event.state),
    ['starting', 'ready', 'crashed', 'failed'],
  );
  const crashed = events[2];
  assert.equal(crashed.reason, 'exited');
  assert.equal(crashed.exitCode, 3);
  assert.deepEqual(crashed.stderr, ['fake stderr line']);
  assert.match(events[3].error.message, /restarts are off/);
  assert.equal(supervisor.state, 'failed');
  assert.equal(supervisor.closed, true);
  await assert.rejects(supervisor.call('x'), (e) => e === events[3].error);
  await assert.rejects(supervisor.whenReady(), (e) => e === events[3].error);
  assert.throws(() => supervisor.notify('x'), ConnectionClosedError);
  assert.equal(fake.hosts.length, 1);
  assert.equal(await supervisor.close(), null);
  assert.equal(supervisor.state, 'stopped');
});

test('gives up (failed) after maxRestarts within the window; events come in order', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, restart: { policy: 'immediate', maxRestarts: 2 }, health: false });
  const events = recordStates(supervisor);
  await supervisor.start();
  for (let i = 0; i < 2; i++) {
    const ready = nextState(supervisor, 'ready');
    fake.last.exit({ exitCode: 1 });
    await ready;
  }
  const failed = nextState(supervisor, 'failed');
  fake.last.exit({ signal: 'SIGSEGV' });
  const { error } = await failed;
  assert.match(error.message, /killed by SIGSEGV; gave up after 2 restart\(s\) within 60000 ms/);
  assert.deepEqual(
    events.map(({ state, attempt, delay }) => [state, attempt, delay].filter((x) => x !== undefined).join(' ')),
    [
      ...['starting 0', 'ready', 'crashed'],
      ...['restarting 1 0', 'starting 1', 'ready', 'crashed'],
      ...['restarting 2 0', 'starting 2', 'ready', 'crashed', 'failed'],
    ],
  );
  assert.equal(fake.hosts.length, 3);
  await supervisor.close();
});

test('a first start that fails is not retried: failed, and calls reject with its error', async () => {
  let starts = 0;
  const cause = new ConnectionClosedError('bridge host (python) stopped before it was ready: exited with code 1');
  const supervisor = new Supervisor({
    start: () => {
      starts++;
      return Promise.reject(cause);
    },
    health: false,
  });
  const queued = supervisor.call('demo.add', { a: 1, b: 2 });
  await assert.rejects(supervisor.start(), (e) => e === cause);
  await assert.rejects(queued, (e) => e === cause);
  assert.equal(supervisor.state, 'failed');
  assert.equal(starts, 1);
});

test('a restart that fails to come up counts as a crash and is retried', async () => {
  const fake = fakeStarts();
  let failNext = false;
  const supervisor = new Supervisor({
    start: () => {
      if (!failNext) return fake.start();
      failNext = false;
      const cause = Object.assign(new Error('exited with code 2'), { exitCode: 2 });
      return Promise.reject(new ConnectionClosedError('stopped before it was ready', { cause }));
    },
    restart: 'immediate',
    health: false,
  });
  const events = recordStates(supervisor);
  await supervisor.start();
  failNext = true;
  const readyAgain = nextEvent((cb) => supervisor.onState(cb), (event) => event.state === 'ready');
  fake.last.exit({ exitCode: 1 });
  await readyAgain;
  const states = events.map(({ state, reason }) => (reason ? `${state} ${reason}` : state));
  assert.deepEqual(states, [
    ...['starting', 'ready', 'crashed exited'],
    ...['restarting', 'starting', 'crashed start'],
    ...['restarting', 'starting', 'ready'],
  ]);
  assert.equal(events[5].exitCode, 2);
  assert.equal(events[6].attempt, 2);
  await supervisor.close();
});

test('calls wait in a bounded queue while starting; queued calls honour signal and timeout', async () => {
  const fake = fakeStarts();
  let release;
  const gate = new Promise((resolve) => {
    release = resolve;
  });
  const supervisor = new Supervisor({ start: () => gate.then(fake.start), maxQueued: 2, health: false });
  supervisor.start();
  assert.equal(supervisor.state, 'starting');

  const controller = new AbortController();
  const cancelled = supervisor.call('demo.a', { n: 1 }, { signal: controller.signal });
  const timedOut = supervisor.call('demo.b', { n: 2 }, { timeout: 20 });
  await assert.rejects(supervisor.call('demo.c'), (e) => e instanceof QueueFullError && e.limit === 2 && e.method === 'demo.c');
  assert.throws(() => supervisor.notify('demo.note'), QueueFullError);

  controller.abort('user gave up');
  await assert.rejects(cancelled, (e) => e instanceof CallCancelledError && e.cause === 'user gave up');
  await assert.rejects(timedOut, (e) => e instanceof CallTimeoutError && e.timeout === 20);

  // Both places are free again.
  const later = supervisor.call('demo.d', { n: 4 });
  supervisor.notify('demo.note', { n: 5 });
  release();
  assert.deepEqual(await later, { n: 4 });
  assert.deepEqual(
    fake.last.sent.map((message) => message.method),
    ['demo.d', 'demo.note'],
    'abandoned calls never reach the host; the queue keeps its order',
  );
  await supervisor.close();
});

test('a timeout counts from call(), across the queue; in flight it cancels on the host', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, health: false, timeout: 30 });
  await supervisor.start();
  await assert.rejects(supervisor.call('hang.forever'), (e) => e instanceof CallTimeoutError && e.timeout === 30);
  assert.deepEqual(fake.last.requests('$/cancelRequest').map((m) => m.params.id), [fake.last.requests('hang.forever')[0].id]);
  assert.deepEqual(await supervisor.call('demo.ok', [1], { timeout: null }), [1]);
  await supervisor.close();
});

test('idempotent calls in flight are retried on the next host; { idempotent } overrides the host', async () => {
  const fake = fakeStarts({ idempotent: ['demo.add'], reply: (m) => (fake.hosts.length === 1 ? undefined : defaultReply(m)) });
  const supervisor = new Supervisor({ start: fake.start, restart: 'immediate', health: false });
  await supervisor.start();
  const retried = settle(supervisor.call('demo.add', { a: 1 }));
  const forcedOff = settle(supervisor.call('demo.add', { a: 2 }, { idempotent: false }));
  const forcedOn = settle(supervisor.call('demo.write', { a: 3 }, { idempotent: true }));
  const notRetried = settle(supervisor.call('demo.write', { a: 4 }));
  fake.last.exit({ signal: 'SIGKILL' });

  assert.deepEqual(await retried, { value: { a: 1 } });
  assert.deepEqual(await forcedOn, { value: { a: 3 } });
  for (const outcome of [await forcedOff, await notRetried]) {
    assert.ok(outcome.error instanceof SidecarCrashedError);
    assert.equal(outcome.error.signal, 'SIGKILL');
  }
  assert.deepEqual(
    fake.hosts[1].sent.map((m) => m.params.a),
    [1, 3],
  );
  await supervisor.close();
});

test('a send that fails before the crash is reported still counts as part of the crash', async () => {
  const fake = fakeStarts({ idempotent: ['demo.add'] });
  const supervisor = new Supervisor({ start: fake.start, restart: 'immediate', health: false });
  await supervisor.start();
  fake.last.breakPipe();
  const retried = supervisor.call('demo.add', { a: 1 });
  const crashed = settle(supervisor.call('demo.write', { a: 2 }));
  supervisor.notify('demo.note', { a: 3 });
  assert.equal(supervisor.state, 'ready');
  fake.last.exit({ signal: 'SIGKILL' });
  assert.deepEqual(await retried, { a: 1 });
  assert.ok((await crashed).error instanceof SidecarCrashedError);
  assert.deepEqual(fake.last.sent.map((m) => m.method).sort(), ['demo.add', 'demo.note']);
  await supervisor.close();
});

test('a send that fails while close() is under way rejects with ConnectionClosedError', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, health: false });
  await supervisor.start();
  fake.last.breakPipe();
  const call = supervisor.call('demo.write');
  await supervisor.close();
  await assert.rejects(call, (e) => e instanceof ConnectionClosedError && !(e instanceof SidecarCrashedError));
});

test('close() from a state listener during close() gets the same promise', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, health: false });
  await supervisor.start();
  let inner;
  supervisor.onState((event) => {
    if (event.state === 'stopping') inner = supervisor.close();
  });
  const outer = supervisor.close();
  assert.equal(inner, outer);
  assert.equal(await outer, 0);
  assert.equal(supervisor.state, 'stopped');
});

test('close() while restarting: queued calls reject, no restart happens, state stopped', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, restart: { policy: 'fixed', delay: 60_000 }, health: false });
  await supervisor.start();
  const restarting = nextState(supervisor, 'restarting');
  fake.last.exit({ exitCode: 1 });
  assert.equal((await restarting).delay, 60_000);
  const queued = supervisor.call('demo.x');
  const stopped = nextState(supervisor, 'stopped');
  assert.equal(await supervisor.close(), null);
  await stopped;
  await assert.rejects(queued, (e) => e instanceof ConnectionClosedError && /supervisor was closed/.test(e.message));
  await assert.rejects(supervisor.whenReady(), ConnectionClosedError);
  assert.equal(fake.hosts.length, 1);
  // The 60 s restart timer was cleared, or this file would take a minute to finish.
});

test('health: pings that time out kill the host; any answer, even an error, means alive', async () => {
  let pingsToAnswer = 3;
  const fake = fakeStarts({
    reply: (m) => {
      if (m.method !== 'rpc.ping') return defaultReply(m);
      // The first host answers a few pings with -32601 (as a host lacking the method would), then hangs.
      if (fake.hosts.length > 1) return { result: 'pong' };
      if (pingsToAnswer-- > 0) return { error: { code: -32601, message: 'Method not found' } };
      return undefined;
    },
  });
  const supervisor = new Supervisor({
    start: fake.start,
    restart: 'immediate',
    health: { interval: 5, timeout: 20, failures: 2 },
  });
  await supervisor.start();
  const crashed = await nextState(supervisor, 'crashed');
  assert.equal(crashed.reason, 'unresponsive');
  assert.equal(crashed.signal, 'SIGKILL');
  assert.equal(fake.hosts[0].requests('rpc.ping').length, 5, '3 answered, then 2 timed out');
  await nextState(supervisor, 'ready');
  await supervisor.close();
});

test('subscriptions made through the supervisor reach every host; unsubscribing stops them', async () => {
  const fake = fakeStarts();
  const supervisor = new Supervisor({ start: fake.start, restart: 'immediate', health: false });
  const seen = [];
  const off = supervisor.on('app.tick', (params) => seen.push(params)); // before the first host
  const progress = [];
  supervisor.onProgress('job', (value) => progress.push(value));
  await supervisor.start();
  fake.last.emit('app.tick', 1);
  fake.last.emit('$/progress', { token: 'job', value: 'a' });
  const ready = nextState(supervisor, 'ready');
  fake.last.exit({ exitCode: 1 });
  await ready;
  fake.last.emit('app.tick', 2);
  fake.last.emit('$/progress', { token: 'job', value: 'b' });
  off();
  fake.last.emit('app.tick', 3);
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(progress, ['a', 'b']);
  await supervisor.close();
});

// ---------------------------------------------------------------------------------------------
// Against the real host

test('kill -9 of the host: crashed, restarting, starting, ready; subscriptions carry over', async () => {
  const supervisor = superviseHost({ restart: 'immediate' });
  const events = recordStates(supervisor);
  const ticks = [];
  supervisor.on('demo.tick', (params) => ticks.push(params));
  const progress = [];
  supervisor.onProgress('job', (value) => progress.push(value.done));
  try {
    const first = await supervisor.whenReady();
    assert.equal(first.pid, supervisor.client.process.pid);
    assert.deepEqual(first.idempotent, ['demo.add', 'demo.count', 'demo.echo', 'demo.sleep', 'rpc.ping', 'system.audit', 'system.health', 'system.info', 'system.metrics', 'system.ping']);
    await supervisor.call('demo.emit', { event: 'demo.tick', payload: 'before' });

    const ready = nextState(supervisor, 'ready');
    process.kill(first.pid, 'SIGKILL');
    const { info } = await ready;
    assert.notEqual(info.pid, first.pid);
    assert.equal(alive(first.pid), false);

    assert.equal(await supervisor.call('demo.emit', { event: 'demo.tick', payload: 'after' }), true);
    assert.equal(await supervisor.call('demo.count', { n: 2, $meta: { progressToken: 'job' } }), 2);
    assert.deepEqual(ticks, ['before', 'after']);
    assert.deepEqual(progress, [1, 2]);

    assert.deepEqual(
      events.map(({ state }) => state),
      ['starting', 'ready', 'crashed', 'restarting', 'starting', 'ready'],
    );
    const crashed = events[2];
    assert.equal(crashed.reason, 'exited');
    assert.equal(crashed.signal, 'SIGKILL');
    assert.equal(crashed.exitCode, null);
    assert.ok(crashed.stderr.some((line) => line.includes('serving bridge-builtins')), 'the stderr tail comes along');
    assert.deepEqual([events[3].attempt, events[3].delay, events[4].attempt], [1, 0, 1]);
  } finally {
    const pid = supervisor.ready?.pid;
    assert.equal(await supervisor.close(), 0);
    assert.equal(alive(pid), false);
  }
  assert.deepEqual(
    events.slice(-2).map(({ state }) => state),
    ['stopping', 'stopped'],
  );
});

test('calls made while the host restarts are queued and complete on the new host', async () => {
  const supervisor = superviseHost({ restart: { policy: 'fixed', delay: 200 } });
  try {
    const { pid } = await supervisor.whenReady();
    const restarting = nextState(supervisor, 'restarting');
    process.kill(pid, 'SIGKILL');
    assert.equal((await restarting).delay, 200);
    assert.equal(supervisor.state, 'restarting');
    const calls = Array.from({ length: 100 }, (_, i) => supervisor.call('demo.add', { a: i, b: 1 }));
    const echo = supervisor.call('demo.echo', { value: 'queued' }, { timeout: 15_000 });
    const fail = supervisor.call('demo.fail', { message: 'queued failure' });
    assert.deepEqual(
      await Promise.all(calls),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(await echo, 'queued');
    await assert.rejects(fail, (e) => e instanceof RpcError && e.code === 1001 && e.message === 'queued failure');
    assert.notEqual(supervisor.ready.pid, pid);
  } finally {
    await supervisor.close();
  }
});

test('kill -9 amid 10,000 calls: idempotent ones all succeed, the others succeed or fail clearly', { timeout: 20_000 }, async () => {
  let addsSent = 0;
  const supervisor = superviseHost({
    restart: 'immediate',
    trace: (direction, message) => {
      if (direction === 'send' && message.method === 'demo.add') addsSent++;
    },
  });
  try {
    const { pid } = await supervisor.whenReady();
    const crashed = nextState(supervisor, 'crashed');
    const total = 10_000;
    let settled = 0;
    const outcomes = [];
    for (let i = 0; i < total; i++) {
      let call;
      if (i % 4 === 0) call = supervisor.call('demo.add', { a: i, b: 1 });
      else if (i % 4 === 1) call = supervisor.call('demo.echo', { value: `echo ${i}` });
      else if (i % 4 === 2) call = supervisor.call('demo.fail', { message: `fail ${i}` });
      else call = supervisor.call('demo.emit', { event: 'bulk.tick', payload: i });
      outcomes.push(
        settle(call).finally(() => {
          if (++settled === total / 4) process.kill(pid, 'SIGKILL');
        }),
      );
    }
    const results = await Promise.all(outcomes);
    assert.equal((await crashed).signal, 'SIGKILL');

    let crashErrors = 0;
    results.forEach(({ value, error }, i) => {
      switch (i % 4) {
        case 0:
          assert.equal(value, i + 1, `demo.add #${i}: ${error?.message}`);
          break;
        case 1:
          assert.equal(value, `echo ${i}`, `demo.echo #${i}: ${error?.message}`);
          break;
        default:
          if (error instanceof SidecarCrashedError) {
            crashErrors++;
            assert.equal(error.method, i % 4 === 2 ? 'demo.fail' : 'demo.emit');
            assert.equal(error.signal, 'SIGKILL');
            assert.equal(error.idempotent, false);
          } else if (i % 4 === 2) {
            const expected = error instanceof RpcError && error.code === 1001 && error.message === `fail ${i}`;
            assert.ok(expected, `demo.fail #${i}: ${error}`);
          } else {
            assert.equal(value, true, `demo.emit #${i}: ${error?.message}`);
          }
      }
    });
    assert.ok(crashErrors > 0, 'the kill caught some non-idempotent calls in flight');
    assert.ok(addsSent > total / 4, `idempotent calls were sent again (${addsSent} demo.add sent)`);
    assert.notEqual(supervisor.ready.pid, pid);
  } finally {
    await supervisor.close();
  }
});

const posixOnly = { skip: process.platform === 'win32' };

test('health checks find a hung host (SIGSTOP), kill it and restart; a call in flight is retried', posixOnly, async () => {
  const supervisor = superviseHost({ restart: 'immediate', health: { interval: 100, timeout: 200, failures: 2 } });
  const { pid } = await supervisor.whenReady();
  try {
    const crashed = nextState(supervisor, 'crashed');
    const ready = nextState(supervisor, 'ready');
    process.kill(pid, 'SIGSTOP');
    const stuck = supervisor.call('demo.echo', { value: 'survives the hang' });
    const event = await crashed;
    assert.equal(event.reason, 'unresponsive');
    assert.equal(event.signal, 'SIGKILL');
    assert.notEqual((await ready).info.pid, pid);
    assert.equal(await stuck, 'survives the hang');
    assert.equal(alive(pid), false);
  } finally {
    for (const signal of ['SIGCONT', 'SIGKILL']) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone: the supervisor killed it.
      }
    }
    await supervisor.close();
  }
});

test('close() lets in-flight calls finish, exits 0, leaves no process, and refuses later calls', async () => {
  const supervisor = superviseHost();
  const { pid } = await supervisor.whenReady();
  const inFlight = supervisor.call('demo.sleep', { seconds: 0.2 });
  const closing = supervisor.close();
  assert.equal(supervisor.state, 'stopping');
  await assert.rejects(supervisor.call('demo.add', { a: 1, b: 1 }), ConnectionClosedError);
  assert.equal(await inFlight, 0.2);
  assert.equal(await closing, 0);
  assert.equal(supervisor.state, 'stopped');
  assert.equal(alive(pid), false);
  assert.equal(await supervisor.close(), 0, 'close() is idempotent');
});

test('the host exits when the Node process running its supervisor is SIGKILLed', posixOnly, async () => {
  const script = `
    import { superviseSidecar } from ${JSON.stringify(new URL('../src/node.js', import.meta.url).href)};
    const supervisor = superviseSidecar({
      command: ${JSON.stringify(pythonCommand())}, args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'],
      cwd: ${JSON.stringify(repoRoot)}, onStderr: null,
    });
    const { pid } = await supervisor.whenReady();
    process.stdout.write(pid + '\\n');
    setInterval(() => {}, 1000);
  `;
  const app = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => app.on('exit', resolve));
  try {
    const line = await new Promise((resolve, reject) => {
      let out = '';
      app.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('\n')) resolve(out.trim());
      });
      app.on('exit', () => reject(new Error(`the app exited before printing the host pid: ${out}`)));
    });
    const hostPid = Number(line);
    assert.ok(Number.isInteger(hostPid) && alive(hostPid), `host pid ${line}`);
    app.kill('SIGKILL');
    await exited;
    assert.ok(await goneWithin(hostPid, 10_000), `host ${hostPid} outlived its app`);
  } finally {
    app.kill('SIGKILL');
  }
});
