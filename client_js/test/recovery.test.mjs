// Recovery re-synchronises what the client had: subscriptions kept by Supervisor.subscribe()
// are made again on the restarted host before queued calls, `state.subscribe` from the last
// version seen (so the app gets exactly the changes it missed) and `fs.watch` as it was; then
// the app is told (`onRecovered`). End to end: the real host, killed with SIGKILL mid-session.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnSidecar } from '../src/node.js';
import { stateSubscription } from '../src/state.js';
import { ConnectionClosedError, RpcError } from '../src/errors.js';
import { Supervisor } from '../src/supervisor.js';
import { nextEvent, pythonCommand, repoRoot } from '../test-support/host.mjs';

/** The real host with state and fs, its database and fs root in `dir`. */
function hostOptions(dir) {
  return {
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--plugin', 'state', '--plugin', 'fs'],
    cwd: repoRoot,
    env: {
      BRIDGE_LOG_LEVEL: 'warning',
      BRIDGE_STATE_PATH: join(dir, 'state.sqlite3'),
      BRIDGE_FS_ROOTS: JSON.stringify([dir]),
    },
    readyTimeout: 20_000,
    onStderr: null,
  };
}

/** Apply RFC 6902 `add`/`replace`/`remove` of top-level members (all these tests send) to a copy. */
function applyOps(value, ops) {
  const next = { ...value };
  for (const { op, path, value: member } of ops) {
    const key = path.slice(1);
    assert.ok(/^[a-z]+$/.test(key), `a top-level member: ${path}`);
    if (op === 'remove') delete next[key];
    else next[key] = member;
  }
  return next;
}

/** The app's copy of a document: kept current from replies and `state.changed`, as an app would. */
class Copy {
  version = null;
  value = undefined;
  gaps = [];

  /** A `state.subscribe` reply, the first or one after a restart. */
  take(reply) {
    if (reply.full) this.value = reply.value;
    else {
      if (reply.from !== this.version) this.gaps.push({ from: reply.from, had: this.version });
      this.value = applyOps(this.value, reply.ops);
    }
    this.version = reply.to;
  }

  changed(event) {
    if (event.to <= this.version) return; // already in a reply
    if (event.from !== this.version) this.gaps.push({ from: event.from, had: this.version });
    this.value = applyOps(this.value, event.ops);
    this.version = event.to;
  }
}

test('kill -9 mid-session: subscriptions are made again from the last version seen, before queued calls', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-recovery-'));
  let starts = 0;
  let openGate;
  const gate = new Promise((resolve) => (openGate = resolve));
  const supervisor = new Supervisor({
    // The restart waits for the test, which meanwhile changes the document as another process.
    start: async () => (starts++ === 0 ? spawnSidecar(hostOptions(dir)) : gate.then(() => spawnSidecar(hostOptions(dir)))),
    restart: 'immediate',
    health: false,
    onError: (error) => assert.fail(error),
  });
  const copy = new Copy();
  const replies = [];
  const fsEvents = [];
  supervisor.on('state.changed', (event) => event.doc === 'notes' && copy.changed(event));
  supervisor.on('fs.changed', (event) => fsEvents.push(event));
  try {
    const first = await supervisor.start();
    await supervisor.call('state.set', { doc: 'notes', value: { title: 'one' } });
    const notes = await supervisor.subscribe('state.subscribe', { doc: 'notes' }, {
      ...stateSubscription,
      onResult: (reply, { recovered }) => {
        assert.equal(recovered, true);
        replies.push(reply);
        copy.take(reply);
      },
    });
    copy.take(notes.result);
    assert.equal(copy.version, 1);
    const watch = await supervisor.subscribe('fs.watch', { paths: [dir], debounce_ms: 20 });

    const seen = nextEvent((handler) => supervisor.on('state.changed', handler), (event) => event.to === 3);
    await supervisor.call('state.patch', { doc: 'notes', ops: [{ op: 'add', path: '/body', value: 'two' }] });
    await supervisor.call('state.patch', { doc: 'notes', ops: [{ op: 'replace', path: '/title', value: 'three' }] });
    await seen;
    assert.deepEqual(notes.params, { doc: 'notes', since_version: 3 });

    const recovered = nextEvent((handler) => supervisor.onRecovered(handler));
    const crashed = nextEvent((handler) => supervisor.onState(handler), (event) => event.state === 'starting');
    process.kill(first.pid, 'SIGKILL');
    await crashed;

    // While the supervisor waits to restart: another process changes the document (the app
    // misses these), and the app queues a patch of its own.
    const other = await spawnSidecar(hostOptions(dir));
    await other.call('state.patch', { doc: 'notes', ops: [{ op: 'add', path: '/by', value: 'other' }] });
    await other.call('state.patch', { doc: 'notes', ops: [{ op: 'remove', path: '/body' }] });
    assert.equal(await other.close(), 0);
    const queued = supervisor.call('state.patch', { doc: 'notes', ops: [{ op: 'add', path: '/mine', value: 'queued' }] });
    const queuedSeen = nextEvent((handler) => supervisor.on('state.changed', handler), (event) => event.to === 6);
    openGate();

    const { attempt, subscriptions } = await recovered;
    assert.equal(attempt, 1);
    assert.deepEqual(subscriptions.map(({ method, params }) => ({ method, params })), [
      { method: 'state.subscribe', params: { doc: 'notes', since_version: 3 } },
      { method: 'fs.watch', params: { paths: [dir], debounce_ms: 20 } },
    ]);
    // Exactly the missed changes (versions 4 and 5), and not the queued patch: it went after.
    assert.equal(replies.length, 1);
    assert.deepEqual({ ...replies[0], subscription: undefined }, {
      subscription: undefined, doc: 'notes', from: 3, to: 5, full: false,
      ops: [{ op: 'add', path: '/by', value: 'other' }, { op: 'remove', path: '/body' }],
    });
    assert.equal(notes.result, replies[0], 'the handle holds the new host\'s reply (its subscription id)');
    assert.deepEqual(await queued, { doc: 'notes', version: 6 });
    await queuedSeen;
    assert.deepEqual(copy.gaps, []);
    assert.equal(copy.version, 6);
    const { value } = await supervisor.call('state.get', { doc: 'notes' });
    assert.deepEqual(copy.value, value);
    assert.deepEqual(value, { title: 'three', by: 'other', mine: 'queued' });

    // The watch was made again: a file written now is reported under its id on the new host.
    const changed = nextEvent((handler) => supervisor.on('fs.changed', handler), (event) => event.subscription === watch.result);
    writeFileSync(join(dir, 'after.txt'), 'x');
    assert.ok((await changed).changes.some((change) => change.path.endsWith('after.txt')));

    // Closed subscriptions end on the host and are not made again after the next restart.
    assert.equal(await notes.close(), true);
    assert.equal(await notes.close(), false);
    assert.equal(await watch.close(), true);
    const again = nextEvent((handler) => supervisor.onRecovered(handler));
    process.kill(supervisor.ready.pid, 'SIGKILL');
    assert.deepEqual((await again).subscriptions, []);
  } finally {
    openGate();
    await supervisor.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A host played in memory, enough for the Supervisor: `answer(method, params)` returns a result,
 * throws to refuse, or returns a promise; `die()` ends it as a crash would.
 */
function fakeHost(answer) {
  const closeListeners = new Set();
  const pending = new Set();
  const host = {
    calls: [],
    ready: { idempotent: [] },
    call(method, params) {
      host.calls.push({ method, params });
      return new Promise((resolve, reject) => {
        const entry = { reject };
        pending.add(entry);
        Promise.resolve()
          .then(() => answer(method, params))
          .then(resolve, reject)
          .finally(() => pending.delete(entry));
      });
    },
    notify() {},
    on: () => () => {},
    onProgress: () => () => {},
    onClose(listener) {
      closeListeners.add(listener);
      return () => closeListeners.delete(listener);
    },
    async close() {
      host.die();
      return 0;
    },
    die() {
      const error = Object.assign(new ConnectionClosedError('fake host killed'), { signal: 'SIGKILL', exitCode: null });
      for (const entry of pending) entry.reject(error);
      for (const listener of [...closeListeners]) listener(error);
      closeListeners.clear();
    },
  };
  return host;
}

test('a host that dies while subscriptions are made again is restarted; a refused one is reported and kept', async () => {
  const hosts = [];
  const reported = [];
  let hang = null;
  let replayStarted;
  const replaying = new Promise((resolve) => (replayStarted = resolve));
  const answers = [
    (method) => (method === 'watch' ? 'w1' : true),
    // The second host dies before answering the replay.
    () => {
      replayStarted();
      return new Promise((resolve) => (hang = resolve));
    },
    // The third refuses it (an RpcError), answers the rest.
    (method) => {
      if (method === 'watch') throw Object.assign(new RpcError(-32603, 'no watches today'), {});
      return true;
    },
    (method) => (method === 'watch' ? 'w4' : true),
  ];
  const supervisor = new Supervisor({
    start: async () => {
      const host = fakeHost(answers[hosts.length]);
      hosts.push(host);
      return host;
    },
    restart: 'immediate',
    health: false,
    onError: (error) => reported.push(error),
  });
  const states = [];
  supervisor.onState(({ state }) => states.push(state));
  const recoveries = [];
  supervisor.onRecovered((event) => recoveries.push(event));
  try {
    await supervisor.start();
    const watch = await supervisor.subscribe('watch', { path: '/x' });
    assert.equal(watch.result, 'w1');

    hosts[0].die();
    const queued = supervisor.call('after', {});
    await replaying;
    // Still starting while the second host has the replay: the queued call waits.
    assert.deepEqual(hosts[1].calls.map((c) => c.method), ['watch']);
    assert.equal(supervisor.state, 'starting');
    const thirdReady = nextEvent((handler) => supervisor.onRecovered(handler));
    hosts[1].die();
    const third = await thirdReady;
    assert.deepEqual(recoveries.length, 1, 'the host that died mid-recovery never recovered');
    assert.equal(third.subscriptions[0].error.message, 'no watches today');
    assert.equal(reported.length, 1);
    assert.equal(await queued, true, 'the queued call went to the host that came up');
    assert.deepEqual(hosts[2].calls.map((c) => c.method), ['watch', 'after']);
    assert.equal(watch.result, 'w1', 'a refused replay leaves the last result');

    const fourth = nextEvent((handler) => supervisor.onRecovered(handler));
    hosts[2].die();
    assert.equal((await fourth).subscriptions[0].result, 'w4', 'a refused one is tried again on the next restart');
    assert.equal(watch.result, 'w4');
    assert.deepEqual(states.filter((s) => s === 'ready').length, 3);
    hang?.();
  } finally {
    await supervisor.close();
  }
});

test('stateSubscription.resume: the newest version of its own document; a reset sets it, even back', () => {
  const { resume, close, events } = stateSubscription;
  assert.deepEqual(events, ['state.changed', 'state.reset']);
  const params = { doc: 'notes' };
  assert.deepEqual(resume(params, { doc: 'notes', from: null, to: 4, full: true, value: {} }), { doc: 'notes', since_version: 4 });
  const at4 = { doc: 'notes', since_version: 4 };
  assert.deepEqual(resume(at4, { doc: 'notes', from: 4, to: 5, ops: [] }), { doc: 'notes', since_version: 5 });
  assert.equal(resume(at4, { doc: 'notes', from: 2, to: 3, ops: [] }), undefined, 'an older change does not move it back');
  assert.equal(resume(at4, { doc: 'other', from: 4, to: 9, ops: [] }), undefined, 'another document');
  assert.equal(resume(at4, null), undefined);
  assert.deepEqual(resume(at4, { doc: 'notes', version: 0, value: {}, deleted: true }), { doc: 'notes', since_version: 0 });
  assert.deepEqual(close({ subscription: 's7' }), ['state.unsubscribe', { subscription: 's7' }]);
});
