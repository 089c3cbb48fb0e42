// Presence follows windows: when an Electron window closes or reloads, the main-side helper
// tells the real host (`collab.departed`, as main itself), so the window's participant leaves
// its sessions at once, its locks released and the others told; a window cannot send it.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { register } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { spawnSidecar } from '../src/node.js';
import { installElectron } from '../test-support/electron.mjs';
import { collabHostOptions, nextEvent } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

const plain = (value) => JSON.parse(JSON.stringify(value));
const refusal = (promise) => promise.then(() => assert.fail('resolved'), (error) => error);

describe('collab presence follows Electron windows', { timeout: 30_000 }, () => {
  let electron;
  let client;
  let unexpose;
  const reported = [];

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    return { window, ...expose(page), id: `window:${window.webContents.id}` };
  }

  /**
   * The page's bridge, subscribed at once to the events the tests wait for (so main knows of the
   * subscription before any later call), and `next(event, predicate)` to wait for one.
   */
  function expose(page) {
    exposeBridge(page.electron);
    const bridge = page.window.bridge;
    const events = new EventEmitter();
    for (const name of ['collab.participant_left', 'collab.participant_joined', 'collab.lock_released']) {
      bridge.on(name, (params) => events.emit(name, plain(params)));
    }
    const next = (name, predicate) => nextEvent((handler) => {
      events.on(name, handler);
      return () => events.off(name, handler);
    }, predicate);
    return { bridge, next };
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar(collabHostOptions());
    unexpose = exposeToRenderers(client, {
      ipcMain: electron.ipcMain,
      allow: ['state.*', 'collab.*'],
      events: ['collab.*'],
      onError: (error) => reported.push(error),
    });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test('a closed window leaves at once: its lock is released and the others are told', async () => {
    const alice = await openWindow('https://app.test/alice');
    const bob = await openWindow('https://app.test/bob');
    await alice.bridge.call('collab.create_session', { id: 'closing', docs: ['closing-doc'], permissions: { '*': ['edit'] } });
    await bob.bridge.call('collab.join', { session: 'closing' });
    await bob.bridge.call('collab.acquire_lock', { session: 'closing', resource: 'closing-doc#/title', ttl: 3600 });
    const locked = await refusal(alice.bridge.call('state.set', { doc: 'closing-doc', value: { title: 'x' } }));
    assert.equal(locked.code, 4603);

    const released = alice.next('collab.lock_released', (p) => p.session === 'closing');
    const left = alice.next('collab.participant_left', (p) => p.session === 'closing');
    bob.window.close();
    assert.deepEqual(await left, { session: 'closing', participant: bob.id, reason: 'departed', $meta: { to: [alice.id] } });
    assert.equal((await released).holder, bob.id);
    const view = plain(await alice.bridge.call('collab.session', { session: 'closing' }));
    assert.deepEqual(view.participants.map((p) => p.participant), [alice.id]);
    assert.deepEqual(view.locks, []);
    await alice.bridge.call('state.patch', { doc: 'closing-doc', ops: [{ op: 'add', path: '/title', value: 'mine' }] });
    alice.window.close();
    assert.deepEqual(reported, []);
  });

  test('a reloaded window leaves, and its new page joins afresh', async () => {
    const alice = await openWindow('https://app.test/alice');
    const bob = await openWindow('https://app.test/bob');
    await alice.bridge.call('collab.create_session', { id: 'reload', docs: ['reload-doc'], permissions: { '*': ['edit'] } });
    await bob.bridge.call('collab.join', { session: 'reload' });
    await bob.bridge.call('collab.acquire_lock', { session: 'reload', resource: 'reload-doc', ttl: 3600 });

    const left = alice.next('collab.participant_left', (p) => p.session === 'reload');
    const again = expose(await bob.window.loadURL('https://app.test/bob-again'));
    assert.equal((await left).participant, bob.id);
    assert.deepEqual(plain(await alice.bridge.call('collab.session', { session: 'reload' })).locks, []);

    const joined = alice.next('collab.participant_joined', (p) => p.session === 'reload');
    await again.bridge.call('collab.join', { session: 'reload' });
    assert.equal((await joined).participant, bob.id);
    alice.window.close();
    bob.window.close();
    assert.deepEqual(reported, []);
  });

  test('a window cannot send the departure, even with collab.* allowed', async () => {
    const alice = await openWindow('https://app.test/alice');
    const mallory = await openWindow('https://app.test/mallory');
    await alice.bridge.call('collab.create_session', { id: 'forged', docs: ['forged-doc'], permissions: { '*': ['edit'] } });
    await mallory.bridge.call('collab.join', { session: 'forged' });
    const refused = await refusal(mallory.bridge.call('collab.departed', { participant: alice.id }));
    assert.equal(refused.code, -32601);
    assert.equal(refused.data.reason, 'not allowed');
    const view = plain(await mallory.bridge.call('collab.session', { session: 'forged' }));
    assert.deepEqual(view.participants.map((p) => p.participant).sort(), [alice.id, mallory.id].sort());
    // Through the host directly, with the window's identity as its caller, it is refused too.
    const forged = await refusal(client.call('collab.departed', { participant: alice.id }, { caller: { window: 99 } }));
    assert.equal(forged.code, 4602);
    alice.window.close();
    mallory.window.close();
  });
});
