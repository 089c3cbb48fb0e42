// fs watches belong to the window that made them, end to end: the Electron stand-in,
// exposeToRenderers and the real host with the fs plugin. Each window watches its own folder;
// `fs.changed` carries `$meta.to` (the watcher), so main routes it to that window alone, and
// another window cannot stop the watch.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { spawnSidecar } from '../src/node.js';
import { installElectron } from '../test-support/electron.mjs';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

const refusal = (promise) => promise.then((result) => assert.fail(`resolved with ${JSON.stringify(result)}`), (error) => error);

async function until(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('fs events reach only the window that watches', { timeout: 30_000 }, () => {
  let electron;
  let client;
  let unexpose;
  let root;

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    const events = [];
    page.window.bridge.on('fs.changed', (params) => events.push(JSON.parse(JSON.stringify(params))));
    return { window, bridge: page.window.bridge, events };
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'bridge-fs-'));
    electron = installElectron();
    client = await spawnSidecar({
      command: pythonCommand(),
      args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--plugin', 'fs'],
      cwd: repoRoot,
      env: { BRIDGE_LOG_LEVEL: 'warning', BRIDGE_FS_ROOTS: JSON.stringify([root]) },
      readyTimeout: 20_000,
    });
    unexpose = exposeToRenderers(client, { ipcMain: electron.ipcMain, allow: ['fs.*'], events: ['fs.changed'] });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
    rmSync(root, { recursive: true, force: true });
  });

  test('two windows, two watches: each gets its own events; neither can stop the other', async () => {
    const [a, b] = await Promise.all([openWindow('https://app.test/a'), openWindow('https://app.test/b')]);
    const dirs = ['a', 'b'].map((name) => join(root, name));
    for (const dir of dirs) mkdirSync(dir);
    const subA = await a.bridge.call('fs.watch', { paths: [dirs[0]], debounce_ms: 20 });
    const subB = await b.bridge.call('fs.watch', { paths: [dirs[1]], debounce_ms: 20 });

    writeFileSync(join(dirs[0], 'one.txt'), 'x');
    writeFileSync(join(dirs[1], 'two.txt'), 'x');
    await until(() => a.events.length > 0 && b.events.length > 0, 10_000, 'both windows to hear of their change');
    assert.ok(a.events.every((e) => e.subscription === subA), JSON.stringify(a.events));
    assert.ok(b.events.every((e) => e.subscription === subB), JSON.stringify(b.events));

    const stolen = await refusal(b.bridge.call('fs.unwatch', { subscription: subA }));
    assert.equal(stolen.code, 4303);
    const before = a.events.length;
    writeFileSync(join(dirs[0], 'three.txt'), 'x');
    await until(() => a.events.length > before, 10_000, "A's watch to go on after B's attempt");
    assert.ok(b.events.every((e) => e.subscription === subB));
    assert.equal(await a.bridge.call('fs.unwatch', { subscription: subA }), true);
    a.window.close();
    b.window.close();
  });
});
