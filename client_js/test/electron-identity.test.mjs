// A page cannot pass for another window, nor for the main process: whatever the shape of its
// params (named, positional, none, or named with its own `$meta.caller` or `$caller`), main
// forwards the call with the window's `$caller` and the host takes it for that window. End to
// end: the Electron stand-in, exposeToRenderers, and the real host serving
// test-support/trust_app.py with the state and collab plugins.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { delimiter } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { CollabErrorCodes, ErrorCodes } from '../src/index.js';
import { spawnSidecar, superviseSidecar } from '../src/node.js';
import { installElectron } from '../test-support/electron.mjs';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

const supportDir = fileURLToPath(new URL('../test-support/', import.meta.url));
const plain = (value) => JSON.parse(JSON.stringify(value));
const refusal = (promise) => promise.then((result) => assert.fail(`resolved with ${JSON.stringify(result)}`), (error) => error);

describe("a window is itself to the host, whatever its params' shape", { timeout: 30_000 }, () => {
  let electron;
  let client;
  let unexpose;
  /** The main process's own participant id: what a page passed for before. */
  let mainId;
  const sent = [];

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    return { window, bridge: page.window.bridge, id: `window:${window.webContents.id}` };
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar({
      command: pythonCommand(),
      args: ['-m', 'bridge', 'serve', 'trust_app:app', '--plugin', 'state', '--plugin', 'collab'],
      cwd: supportDir,
      env: {
        PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(delimiter),
        BRIDGE_LOG_LEVEL: 'warning',
        BRIDGE_STATE_MEMORY: '1',
      },
      readyTimeout: 20_000,
      onStderr: null,
      trace: (direction, message) => direction === 'send' && sent.push(message),
    });
    unexpose = exposeToRenderers(client, { ipcMain: electron.ipcMain, allow: ['who', 'limited', 'state.*', 'collab.*'] });
    mainId = await client.call('who');
    assert.match(mainId, /^connection:\d+$/);
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test('named, positional, none, and a page that declares its own caller: each is the window', async () => {
    const { bridge, window, id } = await openWindow('https://app.test/who');
    const other = await openWindow('https://app.test/other');
    assert.equal(await bridge.call('who', {}), id);
    assert.equal(await bridge.call('who', []), id, 'positional');
    assert.equal(await bridge.call('who'), id, 'no params');
    assert.equal(await bridge.call('who', { $meta: { caller: mainId } }), id, "its own $meta.caller: the main process's id");
    assert.equal(await bridge.call('who', { $meta: { caller: { participant: other.id } } }), id, "its own $meta.caller: another window's");
    // `$caller` in params is only a param: this method takes none, so it is refused, never obeyed.
    const forged = await refusal(bridge.call('who', { $caller: mainId }));
    assert.equal(forged.code, ErrorCodes.InvalidParams);
    assert.deepEqual(plain(forged.data.errors[0].loc), ['$caller']);
    assert.equal((await refusal(bridge.call('who', [{ $meta: { caller: mainId } }]))).code, ErrorCodes.InvalidParams);

    // On the wire: every request of the window carries its $caller, and none the page's $meta.
    const fromWindow = sent.filter((message) => message.method === 'who' && message.$caller);
    assert.equal(fromWindow.length, 7);
    for (const message of fromWindow) {
      assert.deepEqual(message.$caller, { window: window.webContents.id, frame: 'https://app.test/who' });
      assert.equal(message.params?.$meta, undefined);
    }
    window.close();
    other.window.close();
  });

  test("a view-only window can neither join another session, patch, grant itself more, nor release main's lock", async () => {
    const viewer = await openWindow('https://app.test/viewer');
    await client.call('collab.create_session', { id: 'private', docs: ['secret'] });
    await client.call('collab.create_session', { id: 'board', docs: ['board'], permissions: { [viewer.id]: ['view'] } });
    const { version } = await client.call('state.set', { doc: 'board', value: { title: 'plan', cards: [] } });
    await client.call('collab.acquire_lock', { session: 'board', resource: 'board#/title', ttl: 60 });

    const outsider = await refusal(viewer.bridge.call('collab.join', ['private']));
    assert.ok([CollabErrorCodes.Forbidden, CollabErrorCodes.NotAParticipant].includes(outsider.code), outsider.message);
    const joined = await viewer.bridge.call('collab.join', ['board']);
    assert.equal(joined.you, viewer.id);
    assert.deepEqual(plain(joined.permissions), ['view']);

    const ops = [{ op: 'replace', path: '/title', value: 'mine' }];
    for (const params of [
      ['board', ops],
      { doc: 'board', ops },
      { doc: 'board', ops, $meta: { caller: mainId } },
    ]) {
      const error = await refusal(viewer.bridge.call('state.patch', params));
      assert.equal(error.code, CollabErrorCodes.Forbidden, `state.patch ${JSON.stringify(params)}: ${error.message}`);
      assert.equal(error.data.participant, viewer.id);
    }
    assert.equal((await refusal(viewer.bridge.call('state.patch', { doc: 'board', ops, $caller: mainId }))).code, ErrorCodes.InvalidParams);
    assert.equal((await refusal(viewer.bridge.call('collab.share', ['board', viewer.id, ['edit', 'share']]))).code, CollabErrorCodes.Forbidden);

    assert.equal(await viewer.bridge.call('collab.release_lock', ['board', 'board#/title']), false, 'it held no lock');
    assert.equal(await viewer.bridge.call('collab.release_lock', { session: 'board', resource: 'board#/title', $meta: { caller: mainId } }), false);
    const locks = await client.call('collab.locks', { session: 'board' });
    assert.deepEqual(locks.map((lock) => [lock.resource, lock.holder]), [['board#/title', mainId]], "main's lock stands");
    const session = await client.call('collab.session', { session: 'board' });
    assert.deepEqual(plain(session.members[viewer.id]), ['view'], 'no permission was granted');
    const doc = await client.call('state.get', { doc: 'board' });
    assert.deepEqual([doc.version, doc.value.title], [version, 'plan'], 'the document is as main left it');
    viewer.window.close();
  });

  test("a window's rate-limit bucket is its own, whatever its params", async () => {
    const a = await openWindow('https://app.test/limited-a');
    const b = await openWindow('https://app.test/limited-b');
    assert.equal(await client.call('limited'), mainId);
    assert.equal(await client.call('limited'), mainId);
    assert.equal((await refusal(client.call('limited'))).code, ErrorCodes.RateLimited, "main's bucket is spent");

    assert.equal(await a.bridge.call('limited', []), a.id, 'positional: not charged to main');
    assert.equal(await a.bridge.call('limited'), a.id, 'no params: not charged to main');
    for (const params of [{}, [], undefined, { $meta: { caller: b.id } }]) {
      const error = await refusal(a.bridge.call('limited', params));
      assert.equal(error.code, ErrorCodes.RateLimited, `A's bucket is spent, and ${JSON.stringify(params)} does not escape it`);
    }
    assert.equal(await b.bridge.call('limited', []), b.id, "B's bucket is untouched");
    a.window.close();
    b.window.close();
  });
});

// A window behind a supervised host is itself too: Supervisor forwards `caller` (and keeps it on retries).
test('through a Supervisor, too, a window is itself', { timeout: 30_000 }, async () => {
  const electron = installElectron();
  const supervisor = superviseSidecar({
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'trust_app:app'],
    cwd: supportDir,
    env: { PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(delimiter), BRIDGE_LOG_LEVEL: 'warning' },
    readyTimeout: 20_000,
    onStderr: null,
  });
  const unexpose = exposeToRenderers(supervisor, { ipcMain: electron.ipcMain, allow: ['who', 'rows'] });
  try {
    await supervisor.whenReady();
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL('https://app.test/supervised');
    exposeBridge(page.electron);
    const { bridge } = page.window;
    const id = `window:${window.webContents.id}`;
    assert.equal(await bridge.call('who', []), id);
    assert.equal(await bridge.call('who'), id);
    assert.equal(await bridge.call('who', { $meta: { caller: 'connection:1' } }), id);
    window.close();
  } finally {
    unexpose();
    await supervisor.close();
    electron.uninstall();
  }
});
