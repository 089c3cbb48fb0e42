// The Electron helpers (src/electron-main.js, src/electron-preload.js) and examples/electron,
// against the Electron stand-in (test-support/electron.mjs) with the main side calling the
// real Python host.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { ErrorCodes, spawnSidecar } from '../src/node.js';
import { installElectron, ipcClone } from '../test-support/electron.mjs';
import { nextEvent, processExists, pythonCommand, repoRoot } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

/** Values made in a page's world have its prototypes; compare them as JSON. */
const plain = (value) => JSON.parse(JSON.stringify(value));

describe('the stand-in copies values the way Electron does', () => {
  let electron;
  before(() => {
    electron = installElectron();
  });
  after(() => electron.uninstall());

  test('IPC: functions and platform objects are refused, class instances lose their prototype', () => {
    assert.throws(() => ipcClone([{ f() {} }]), /could not be cloned/);
    assert.throws(() => ipcClone([new AbortController().signal]), /could not be cloned/);
    assert.throws(() => ipcClone([Promise.resolve(1)]), /could not be cloned/);
    class Point {
      constructor() {
        this.x = 1;
      }
    }
    const [copy] = ipcClone([new Point()]);
    assert.deepEqual(copy, { x: 1 });
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
  });

  test('contextBridge: an AbortSignal arrives empty, errors keep only their message, the page has its own realm', async () => {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL('https://app.test/probe');
    page.contextBridge.exposeInMainWorld('probe', {
      take: (value) => ({ keys: Object.keys(value), listens: typeof value.addEventListener, same: value }),
      fail: () => {
        throw Object.assign(new RangeError('boom'), { code: 7 });
      },
    });
    const seen = page.run('probe.take(new AbortController().signal)');
    assert.deepEqual(plain(seen), { keys: [], listens: 'undefined', same: {} });
    const error = page.run('(() => { try { probe.fail(); } catch (e) { return e; } })()');
    assert.equal(error.message, 'boom');
    assert.equal(error.code, undefined);
    assert.equal(error.name, 'Error');
    assert.equal(error instanceof Error, false, 'made in the page world, not this one');
    assert.equal(page.run('Object.isFrozen(probe)'), true);
    assert.throws(() => page.contextBridge.exposeInMainWorld('probe', {}), /existing property/);
    const outside = 42;
    assert.throws(() => page.contextBridge.executeInMainWorld({ func: () => outside }), /outside is not defined/);
    window.close();
  });
});

describe('exposeToRenderers + exposeBridge against the real host', { timeout: 20_000 }, () => {
  let electron;
  let client;
  let unexpose;
  const traceListeners = new Set();
  const sent = [];

  /** Resolve with the next message the main process's client sends or receives that passes `predicate`. */
  function nextTraced(direction, predicate) {
    return nextEvent(
      (cb) => {
        const listener = (dir, message) => dir === direction && cb(message);
        traceListeners.add(listener);
        return () => traceListeners.delete(listener);
      },
      predicate,
    );
  }

  /** A window whose page ran exposeBridge, as the preload would. */
  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    return { window, page, contents: window.webContents, bridge: page.window.bridge };
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar({
      command: pythonCommand(),
      args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'],
      cwd: repoRoot,
      env: { BRIDGE_LOG_LEVEL: 'warning' },
      readyTimeout: 20_000,
      trace: (direction, message) => {
        if (direction === 'send') sent.push(message);
        for (const listener of traceListeners) listener(direction, message);
      },
    });
    unexpose = exposeToRenderers(client, {
      ipcMain: electron.ipcMain,
      allow: ['system.ping', 'demo.*'],
      events: ['demo.tick', 'demo.other'],
    });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test("an allowed call resolves, and every shape of params goes with the window's $caller", async () => {
    const { bridge, contents, window } = await openWindow('https://app.test/one');
    const caller = { window: contents.id, frame: 'https://app.test/one' };
    const last = (method) => {
      const { id, jsonrpc, ...rest } = sent.findLast((message) => message.method === method);
      return rest;
    };
    assert.equal(await bridge.call('demo.add', { a: 2, b: 3, $meta: { caller: { window: 999 }, progressToken: 'x' } }), 5);
    assert.deepEqual(last('demo.add'), { method: 'demo.add', params: { a: 2, b: 3 }, $caller: caller }, "the page's $meta is dropped");
    assert.equal(await bridge.call('demo.add', [4, 5]), 9);
    assert.deepEqual(last('demo.add'), { method: 'demo.add', params: [4, 5], $caller: caller });
    assert.equal(await bridge.call('system.ping'), 'pong');
    assert.deepEqual(last('system.ping'), { method: 'system.ping', $caller: caller });
    window.close();
  });

  test('a caller() that names no participant is refused in main: the window would pass for the main process', async () => {
    const unexposeOther = exposeToRenderers(client, { ipcMain: electron.ipcMain, allow: ['system.ping'], channel: 'anon', caller: () => undefined });
    try {
      const { page, window } = await openWindow('https://app.test/anon');
      exposeBridge({ ...page.electron, name: 'anon', channel: 'anon' });
      const before = sent.length;
      const error = await page.window.anon.call('system.ping', []).then(() => assert.fail('resolved'), (e) => e);
      assert.equal(error.name, 'TypeError');
      assert.match(error.message, /caller\(event\) returned undefined, which names no participant/);
      assert.equal(sent.length, before, 'nothing reached the host');
      window.close();
    } finally {
      unexposeOther();
    }
  });

  test('a method off the allowlist is refused in main: a -32601 RpcError, and the host never sees it', async () => {
    const { bridge, window } = await openWindow('https://app.test/refused');
    const before = sent.length;
    const error = await bridge.call('rpc.discover').then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof bridge.RpcError, 'rebuilt as the page-world RpcError');
    assert.equal(error.code, ErrorCodes.MethodNotFound);
    assert.match(error.message, /rpc\.discover.*not allowed/);
    assert.deepEqual(plain(error.data), { method: 'rpc.discover', reason: 'not allowed' });
    await assert.rejects(bridge.call('demo'), (e) => e.code === ErrorCodes.MethodNotFound, '"demo.*" does not allow "demo"');
    assert.equal(sent.slice(before).length, 0);
    window.close();
  });

  test("an application error keeps its code, message and data across both hops", async () => {
    const { bridge, window } = await openWindow('https://app.test/errors');
    const error = await bridge.call('demo.fail', { message: 'custom message' }).then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof bridge.RpcError);
    assert.equal(error.name, 'RpcError');
    assert.equal(error.code, 1001);
    assert.equal(error.message, 'custom message');
    assert.equal(typeof error.data.hint, 'string');

    const invalid = await bridge.call('demo.add', { a: 'x' }).then(() => assert.fail('resolved'), (e) => e);
    assert.equal(invalid.code, ErrorCodes.InvalidParams);
    assert.ok(invalid.data.errors.some((item) => item.loc.includes('a')));
    window.close();
  });

  test('events reach only the windows that subscribed, until they unsubscribe', async () => {
    const a = await openWindow('https://app.test/a');
    const b = await openWindow('https://app.test/b');
    const ticksA = [];
    const offA = a.bridge.on('demo.tick', (params) => ticksA.push(plain(params)));
    const otherB = nextEvent((cb) => b.bridge.on('demo.other', cb));
    await b.bridge.call('system.ping'); // B's subscription has reached main

    assert.equal(await a.bridge.call('demo.emit', { event: 'demo.tick', payload: { n: 1 } }), true);
    await a.bridge.call('demo.emit', { event: 'demo.other', payload: { n: 2 } });
    assert.deepEqual(plain(await otherB), { n: 2 });
    assert.deepEqual(ticksA, [{ n: 1 }]);
    const eventsTo = (w, name) => w.contents.sent.filter((m) => m.channel === 'bridge:event' && m.args[0].event === name).length;
    assert.equal(eventsTo(b, 'demo.tick'), 0, 'B never subscribed to demo.tick');
    assert.equal(eventsTo(a, 'demo.other'), 0, 'A never subscribed to demo.other');

    offA();
    await a.bridge.call('demo.emit', { event: 'demo.tick', payload: { n: 3 } });
    await a.bridge.call('system.ping');
    assert.deepEqual(ticksA, [{ n: 1 }]);
    assert.equal(eventsTo(a, 'demo.tick'), 1);

    // An event off the events list: refused, reported on the page's console.
    a.bridge.on('secret.leak', () => {});
    await a.bridge.call('system.ping');
    const reported = a.page.console.messages.find((m) => m.level === 'error');
    assert.match(String(reported?.args[1]?.message), /event "secret\.leak" is not allowed/);
    a.window.close();
    b.window.close();
  });

  test('an event with a `$meta.to` list reaches only the windows of those participants', async () => {
    const a = await openWindow('https://app.test/a');
    const b = await openWindow('https://app.test/b');
    const seen = { a: [], b: [] };
    a.bridge.on('demo.tick', (params) => seen.a.push(plain(params)));
    b.bridge.on('demo.tick', (params) => seen.b.push(plain(params)));
    await b.bridge.call('system.ping'); // both subscriptions have reached main
    const toA = { $meta: { to: [`window:${a.contents.id}`] }, n: 1 };
    await b.bridge.call('demo.emit', { event: 'demo.tick', payload: toA });
    await b.bridge.call('demo.emit', { event: 'demo.tick', payload: { n: 2 } }); // no list: everyone
    await a.bridge.call('system.ping');
    await b.bridge.call('system.ping');
    assert.deepEqual(seen.a, [toA, { n: 2 }]);
    assert.deepEqual(seen.b, [{ n: 2 }], 'B is not in the to list of the first event');
    a.window.close();
    b.window.close();
  });

  test('progress crosses both hops, every value before the result', async () => {
    const { bridge, window } = await openWindow('https://app.test/progress');
    const values = [];
    const result = await bridge.call('demo.count', { n: 5 }, { onProgress: (value) => values.push(plain(value)) });
    assert.equal(result, 5);
    assert.deepEqual(
      values,
      [1, 2, 3, 4, 5].map((done) => ({ done, total: 5 })),
    );
    window.close();
  });

  test('aborting in the page rejects at once and cancels the call on the host (-32800)', async () => {
    const { bridge, window } = await openWindow('https://app.test/cancel');
    const controller = new AbortController();
    const started = Date.now();
    const reachedHost = nextTraced('send', (message) => message.method === 'demo.sleep');
    const call = bridge.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
    const { id } = await reachedHost;
    const hostReply = nextTraced('receive', (message) => message.id === id);
    const cancelSent = nextTraced('send', (message) => message.method === '$/cancelRequest' && message.params.id === id);
    controller.abort();
    const error = await call.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof bridge.CallCancelledError);
    assert.equal(error.name, 'AbortError');
    await cancelSent;
    assert.equal((await hostReply).error.code, ErrorCodes.RequestCancelled);
    assert.ok(Date.now() - started < 10_000, 'cancellation took as long as the sleep');

    const before = sent.length;
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(bridge.call('demo.sleep', { seconds: 30 }, { signal: aborted.signal }), bridge.CallCancelledError);
    assert.equal(sent.length, before, 'a call aborted before it started is never sent');
    window.close();
  });

  test("a page's timeout becomes a CallTimeoutError and cancels the call on the host", async () => {
    const { bridge, window } = await openWindow('https://app.test/timeout');
    const reachedHost = nextTraced('send', (message) => message.method === 'demo.sleep');
    const call = bridge.call('demo.sleep', { seconds: 30 }, { timeout: 100 });
    const { id } = await reachedHost;
    const cancelSent = nextTraced('send', (message) => message.method === '$/cancelRequest' && message.params.id === id);
    const error = await call.then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof bridge.CallTimeoutError);
    assert.equal(error.name, 'TimeoutError');
    assert.equal(error.timeout, 100);
    await cancelSent;
    window.close();
  });

  test('closing a window cancels its calls on the host', async () => {
    const { bridge, window } = await openWindow('https://app.test/closing');
    const reachedHost = nextTraced('send', (message) => message.method === 'demo.sleep');
    bridge.call('demo.sleep', { seconds: 30 });
    const { id } = await reachedHost;
    const hostReply = nextTraced('receive', (message) => message.id === id);
    window.close();
    assert.equal((await hostReply).error.code, ErrorCodes.RequestCancelled);
  });

  test('what IPC cannot clone fails in the page without reaching the host; class instances arrive as plain data', async () => {
    const { bridge, window } = await openWindow('https://app.test/clone');
    const before = sent.length;
    await assert.rejects(bridge.call('demo.echo', { value: () => 1 }), /could not call demo\.echo: .*could not be cloned/);
    assert.equal(sent.length, before);
    const echoed = await window.webContents.page.run(`
      class Point { constructor() { this.x = 1; } get y() { return 2; } }
      bridge.call('demo.echo', { value: new Point() })
    `);
    assert.deepEqual(plain(echoed), { x: 1 });
    window.close();
  });

  test('setup refuses what it cannot honour', () => {
    const ipcMain = electron.ipcMain;
    assert.throws(() => exposeToRenderers(client, { ipcMain, allow: ['demo*'] }), /neither a name nor a "prefix\.\*" pattern/);
    assert.throws(() => exposeToRenderers(client, { ipcMain, allow: ['*'] }), /neither a name/);
    assert.throws(() => exposeToRenderers(client, { ipcMain, allow: 'demo.*' }), /must be an array/);
    assert.throws(() => exposeToRenderers({}, { ipcMain, allow: [] }), /call\(\) and on\(\)/);
    assert.throws(() => exposeToRenderers(client, { ipcMain, allow: [] }), /second handler for 'bridge:call'/);
    assert.throws(() => exposeBridge({ contextBridge: { exposeInMainWorld() {} }, ipcRenderer: electron.ipcMain }), /Electron 35/);
  });

  test('another channel and name side by side; a host that dies rejects the page with ConnectionClosedError', async () => {
    const second = await spawnSidecar({ command: pythonCommand(), args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app'], cwd: repoRoot, env: { BRIDGE_LOG_LEVEL: 'warning' } });
    const unexposeSecond = exposeToRenderers(second, { ipcMain: electron.ipcMain, allow: ['demo.sleep', 'system.ping'], channel: 'second' });
    try {
      const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
      const page = await window.loadURL('https://app.test/second');
      exposeBridge(page.electron);
      exposeBridge({ ...page.electron, name: 'secondBridge', channel: 'second' });
      const { bridge, secondBridge } = page.window;
      assert.equal(await secondBridge.call('system.ping'), 'pong');
      await assert.rejects(secondBridge.call('demo.add', [1, 2]), (e) => e.code === ErrorCodes.MethodNotFound, 'each channel has its own allowlist');
      assert.equal(await bridge.call('demo.add', [1, 2]), 3);

      const sleeping = secondBridge.call('demo.sleep', { seconds: 30 });
      assert.equal(await secondBridge.call('system.ping'), 'pong');
      second.process.kill('SIGKILL');
      const error = await sleeping.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(error instanceof secondBridge.ConnectionClosedError);
      assert.match(error.message, /killed by SIGKILL/);
      window.close();
    } finally {
      unexposeSecond();
      second.process.kill('SIGKILL');
    }
  });

  test('after dispose the page gets a clear error and main holds no handlers', async () => {
    const { bridge, window } = await openWindow('https://app.test/disposed');
    unexpose();
    assert.equal(electron.ipcMain.hasHandler('bridge:call'), false);
    await assert.rejects(bridge.call('system.ping'), /could not call system\.ping: .*No handler registered for 'bridge:call'/);
    window.close();
  });
});

test('examples/electron: the window calls the host through window.bridge, and quitting closes the host', { timeout: 20_000 }, async () => {
  const electron = installElectron();
  const loaded = electron.nextPage();
  process.env.BRIDGE_LOG_LEVEL = 'warning';
  const main = await import('../../examples/electron/main.mjs');
  const page = await loaded;
  const log = page.document.getElementById('log');
  const click = (id) => page.document.getElementById(id).click();
  try {
    click('ping');
    await log.waitForText('system.ping -> "pong"');
    click('add');
    await log.waitForText('demo.add -> 5');
    click('count');
    await log.waitForText('demo.count -> 5');
    assert.equal(page.document.getElementById('progress').textContent, '5/5');
    click('emit');
    await log.waitForText('event demo.tick {"tick":1}');
    click('fail');
    await log.waitForText(/demo\.fail failed: RpcError 1001: this call fails on purpose \{"hint":/);
    click('forbidden');
    await log.waitForText('rpc.discover failed: RpcError -32601');
    click('sleep');
    click('cancel');
    await log.waitForText('demo.sleep failed: AbortError');

    const client = await main.sidecar;
    const pid = client.process.pid;
    const quitting = Date.now();
    electron.app.quit();
    assert.equal(await electron.app.exited, 0);
    assert.equal(client.process.exitCode, 0, 'the host exited by itself');
    assert.equal(processExists(pid), false);
    // Had the cancelled sleep still been running, the host would have waited out its 5 s grace.
    assert.ok(Date.now() - quitting < 4000, `quitting took ${Date.now() - quitting} ms`);
    assert.deepEqual(page.console.messages, []);
  } finally {
    const client = await main.sidecar.catch(() => null);
    if (client && client.process.exitCode === null) client.process.kill('SIGKILL');
    electron.uninstall();
  }
});
