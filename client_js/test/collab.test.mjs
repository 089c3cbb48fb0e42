// Collaboration across Electron windows: three windows (the Electron stand-in) share one real
// host through exposeToRenderers. The host knows each window as participant `window:<id>`,
// enforces their permissions and locks, and the helper routes collab events by their `to` list.

import assert from 'node:assert/strict';
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

describe('state and collab from Electron windows', { timeout: 30_000 }, () => {
  let electron;
  let client;
  let unexpose;

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    const events = [];
    for (const name of ['state.changed', 'collab.participant_joined', 'collab.lock_acquired', 'collab.conflict',
      'collab.conflict_resolved']) {
      page.window.bridge.on(name, (params) => events.push({ name, params: plain(params) }));
    }
    return { window, bridge: page.window.bridge, id: `window:${window.webContents.id}`, events };
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar(collabHostOptions());
    unexpose = exposeToRenderers(client, {
      ipcMain: electron.ipcMain,
      allow: ['state.*', 'collab.*'],
      events: ['state.changed', 'collab.*'],
    });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test('two writers and a viewer: permissions, a lock, a conflict resolved, events to the right windows', async () => {
    const [alice, bob, carol] = await Promise.all(['a', 'b', 'c'].map((n) => openWindow(`https://app.test/${n}`)));
    const session = await alice.bridge.call('collab.create_session', {
      id: 'board', docs: ['board'], permissions: { [bob.id]: ['edit'], [carol.id]: ['view'] },
    });
    assert.deepEqual(plain(session.members[alice.id]), ['edit', 'view', 'comment', 'share'], 'the host knows the window');
    const joined = nextEvent((cb) => alice.bridge.on('collab.participant_joined', cb), (p) => p.participant === bob.id);
    await bob.bridge.call('collab.join', { session: 'board' });
    assert.deepEqual(plain(await joined).$meta.to, [alice.id]);
    await carol.bridge.call('collab.join', { session: 'board' });
    const { version } = await alice.bridge.call('state.set', { doc: 'board', value: { title: 'plan', cards: [] } });

    const viewer = await refusal(carol.bridge.call('state.patch', { doc: 'board', ops: [{ op: 'add', path: '/cards/-', value: 'c' }] }));
    assert.equal(viewer.code, 4602);
    assert.equal((await carol.bridge.call('state.get', { doc: 'board' })).value.title, 'plan');

    await alice.bridge.call('collab.acquire_lock', { session: 'board', resource: 'board#/title', ttl: 30 });
    const locked = await refusal(bob.bridge.call('state.patch', { doc: 'board', ops: [{ op: 'replace', path: '/title', value: 'x' }] }));
    assert.equal(locked.code, 4603);
    assert.equal(locked.data.holder, alice.id);
    await alice.bridge.call('collab.release_lock', { session: 'board', resource: 'board#/title' });

    const sub = await carol.bridge.call('state.subscribe', { doc: 'board', since_version: version });
    assert.equal(sub.full, false);
    const changed = nextEvent((cb) => carol.bridge.on('state.changed', cb), (p) => p.to === version + 1);
    await alice.bridge.call('state.patch', { doc: 'board', base_version: version, ops: [{ op: 'add', path: '/cards/-', value: 'a' }] });
    assert.deepEqual(plain(await changed).ops, [{ op: 'add', path: '/cards/-', value: 'a' }]);
    const conflict = await refusal(bob.bridge.call('state.patch', {
      doc: 'board', base_version: version, ops: [{ op: 'add', path: '/cards/-', value: 'b' }] }));
    assert.equal(conflict.code, 4501);
    assert.deepEqual(plain(conflict.data.paths), ['/cards']);
    const resolved = nextEvent((cb) => alice.bridge.on('collab.conflict_resolved', cb));
    await bob.bridge.call('collab.resolve', { conflict_id: conflict.data.conflict_id, strategy: 'manual', value: ['a', 'b'] });
    assert.equal(plain(await resolved).strategy, 'manual');
    assert.deepEqual(plain((await carol.bridge.call('state.get', { doc: 'board' })).value.cards), ['a', 'b']);

    await carol.bridge.call('collab.session', { session: 'board' }); // every event has reached the windows
    const names = (w) => w.events.map((e) => e.name);
    assert.ok(names(alice).includes('collab.conflict') && names(bob).includes('collab.conflict'));
    assert.ok(!names(carol).includes('collab.conflict'), 'the viewer was not involved in the conflict');
    assert.ok(names(carol).includes('collab.lock_acquired'), 'everyone in the session hears of a lock');
    assert.ok(names(carol).includes('state.changed'));
    assert.ok(!names(alice).includes('state.changed') && !names(bob).includes('state.changed'),
      'changes go only to the windows that subscribed to the document');
    for (const w of [alice, bob, carol]) w.window.close();
  });
});
