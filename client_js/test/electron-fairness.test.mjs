// One window cannot wedge the host for the others: each caller gets a share of the call slots,
// cancels are read and answered however busy the host is, and `rpc.ping` always answers. End
// to end: the Electron stand-in, exposeToRenderers, and the real host serving
// test-support/trust_app.py with its default limits (256 slots, half of them per caller).

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { delimiter } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { ErrorCodes } from '../src/index.js';
import { spawnSidecar } from '../src/node.js';
import { installElectron } from '../test-support/electron.mjs';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

const supportDir = fileURLToPath(new URL('../test-support/', import.meta.url));
/** How long a call of a window that is not the busy one may take. */
const PROMPT_MS = 1000;

describe('one busy window does not starve the others or the main process', { timeout: 60_000 }, () => {
  let electron;
  let client;
  let unexpose;
  const traced = { send: [], receive: [] };
  const watchers = new Set();

  /** Resolves once `predicate()` holds, checked after each message main sends or receives; rejects after `ms`. */
  function until(predicate, ms, what) {
    return new Promise((resolve, reject) => {
      if (predicate()) return resolve();
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        watchers.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`gave up after ${ms} ms waiting for ${what}`));
      }, ms);
      watchers.add(check);
    });
  }

  /** The ids of the requests main sent for `method`, from the `from`th message on. */
  const idsSent = (method, from = 0) => traced.send.slice(from).filter((m) => m.method === method && m.id !== undefined).map((m) => m.id);
  /** The host's replies to `ids`, by id. */
  function repliesTo(ids) {
    const wanted = new Set(ids);
    return new Map(traced.receive.filter((m) => wanted.has(m.id) && ('result' in m || 'error' in m)).map((m) => [m.id, m]));
  }

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    return { window, page, bridge: page.window.bridge, id: `window:${window.webContents.id}` };
  }

  /**
   * Window `w` calls `who` over and over, each with a PROMPT_MS timeout, until stop(), which
   * rejects with the first call that failed. `reached(n)` waits for n more answers (or a failure).
   */
  function keepCalling(w) {
    const loop = { count: 0, slowest: 0, stopped: false, error: null };
    const done = (async () => {
      while (!loop.stopped) {
        const started = performance.now();
        assert.equal(await w.bridge.call('who', [], { timeout: PROMPT_MS }), w.id);
        loop.slowest = Math.max(loop.slowest, performance.now() - started);
        loop.count++;
        for (const watcher of watchers) watcher();
      }
    })().catch((error) => {
      loop.error = error;
      for (const watcher of watchers) watcher();
    });
    loop.reached = async (more, ms) => {
      const target = loop.count + more;
      await until(() => loop.count >= target || loop.error, ms, `${more} more answers to ${w.id}`);
      if (loop.error) throw loop.error;
    };
    loop.stop = async () => {
      loop.stopped = true;
      await done;
      if (loop.error) throw loop.error;
    };
    return loop;
  }

  /** Main's own calls: a ping and an ordinary call, each answered within PROMPT_MS. */
  async function mainIsServed() {
    const started = performance.now();
    assert.equal(await client.call('rpc.ping', undefined, { timeout: PROMPT_MS }), 'pong');
    assert.match(await client.call('who', [], { timeout: PROMPT_MS }), /^connection:\d+$/);
    return performance.now() - started;
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar({
      command: pythonCommand(),
      args: ['-m', 'bridge', 'serve', 'trust_app:app'],
      cwd: supportDir,
      env: { PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(delimiter), BRIDGE_LOG_LEVEL: 'warning' },
      readyTimeout: 20_000,
      onStderr: null,
      trace: (direction, message) => {
        for (const one of [message].flat()) traced[direction].push(one);
        for (const watcher of watchers) watcher();
      },
    });
    assert.equal(client.ready.limits.maxInflight, 256, 'the defaults this test is about');
    assert.equal(client.ready.limits.maxInflightPerCaller, 128);
    unexpose = exposeToRenderers(client, { ipcMain: electron.ipcMain, allow: ['who', 'nap', 'rows'] });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test('300 sleeping calls from one window, then 300 aborts: the other window and main are served throughout', async () => {
    const busy = await openWindow('https://app.test/busy');
    const other = await openWindow('https://app.test/other');
    const from = traced.send.length;
    const controllers = [];
    const naps = [];
    for (let i = 0; i < 300; i++) {
      const controller = new busy.page.window.AbortController();
      controllers.push(controller);
      naps.push(busy.bridge.call('nap', { seconds: 30 }, { signal: controller.signal }).then(() => 'resolved', (error) => error));
    }
    await until(() => idsSent('nap', from).length === 300, 10_000, 'main to send the 300 naps');

    const loop = keepCalling(other);
    await loop.reached(20, 10_000);
    assert.ok((await mainIsServed()) < 2 * PROMPT_MS);

    const ids = idsSent('nap', from);
    const cancelledAt = performance.now();
    for (const controller of controllers) controller.abort();
    for (const outcome of await Promise.all(naps)) assert.equal(outcome?.name, 'AbortError', String(outcome));
    await until(() => repliesTo(ids).size === 300, 5000, 'the host to answer all 300 cancelled naps');
    const cancelMs = performance.now() - cancelledAt;
    for (const reply of repliesTo(ids).values()) assert.equal(reply.error?.code, ErrorCodes.RequestCancelled, JSON.stringify(reply));
    assert.ok(cancelMs < 2000, `the cancels took ${Math.round(cancelMs)} ms to be answered (queued calls answer at once)`);

    await loop.reached(10, 5000);
    await loop.stop();
    assert.ok(loop.slowest < PROMPT_MS, `the other window's slowest call took ${Math.round(loop.slowest)} ms`);
    assert.ok((await mainIsServed()) < 2 * PROMPT_MS);
    busy.window.close();
    other.window.close();
  });

  test('more streams than the host has slots, never read by one window, hold only its share: the other window and main are served', async () => {
    const hoarder = await openWindow('https://app.test/hoarder');
    const other = await openWindow('https://app.test/streams-other');
    const from = traced.send.length;
    const streams = [];
    const hoard = client.ready.limits.maxInflight + 4;
    for (let i = 0; i < hoard; i++) streams.push(hoarder.bridge.stream('rows', { n: 1_000_000 }, { window: 1 }));
    await until(() => idsSent('rows', from).length === hoard, 10_000, `main to send the ${hoard} streams`);
    const ids = idsSent('rows', from);
    // Every stream the host started has sent its first chunk and waits for credit that never comes.
    await until(
      () => new Set(traced.receive.filter((m) => m.method === '$/stream' && ids.includes(m.params?.id)).map((m) => m.params.id)).size >= client.ready.limits.maxInflightPerCaller,
      10_000,
      'the host to start the hoarder’s share of streams',
    );

    const loop = keepCalling(other);
    await loop.reached(20, 10_000);
    assert.ok((await mainIsServed()) < 2 * PROMPT_MS);
    const rows = [];
    for await (const chunk of other.bridge.stream('rows', { n: 100 }, { timeout: 5000 })) rows.push(...chunk);
    assert.equal(rows.length, 100, "the other window's own stream runs to its end");
    await loop.stop();
    assert.ok(loop.slowest < PROMPT_MS, `the other window's slowest call took ${Math.round(loop.slowest)} ms`);

    hoarder.window.close(); // cancels its streams on the host
    await until(() => repliesTo(ids).size === hoard, 5000, 'the host to end every stream of the hoarder');
    for (const reply of repliesTo(ids).values()) assert.equal(reply.error?.code, ErrorCodes.RequestCancelled, JSON.stringify(reply));
    assert.ok((await mainIsServed()) < 2 * PROMPT_MS);
    void streams;
    other.window.close();
  });
});
