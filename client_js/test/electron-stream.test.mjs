// window.bridge.stream(): chunks, credit and cancellation across the IPC hop, against the
// Electron stand-in with the real host (test-support/stream_app.py) behind main.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { exposeToRenderers } from '../src/electron-main.js';
import { exposeBridge } from '../src/electron-preload.js';
import { ErrorCodes, spawnSidecar } from '../src/node.js';
import { installElectron } from '../test-support/electron.mjs';
import { supportAppOptions } from '../test-support/host.mjs';

register('../test-support/loader.mjs', import.meta.url);

const plain = (value) => JSON.parse(JSON.stringify(value));

describe('window.bridge.stream() against the real host', { timeout: 30_000 }, () => {
  let electron;
  let client;
  let unexpose;
  const sent = [];

  async function openWindow(url) {
    const window = new electron.BrowserWindow({ webPreferences: { sandbox: false } });
    const page = await window.loadURL(url);
    exposeBridge(page.electron);
    return { window, page, contents: window.webContents, bridge: page.window.bridge };
  }

  /** Poll the host until the generator's finally ran `closed` times. */
  async function closedCount(closed) {
    let state;
    for (let i = 0; i < 100; i++) {
      state = await client.call('data.state');
      if (state.closed >= closed) break;
      await sleep(20);
    }
    return state;
  }

  before(async () => {
    electron = installElectron();
    client = await spawnSidecar(supportAppOptions('stream_app:app', {
      trace: (direction, message) => direction === 'send' && sent.push(message),
    }));
    unexpose = exposeToRenderers(client, { ipcMain: electron.ipcMain, allow: ['data.rows'] });
  });

  after(async () => {
    unexpose?.();
    if (client && !client.closed) await client.close();
    electron.uninstall();
  });

  test('every chunk in order with progress, then the reply; the host sees the window and the window size', async () => {
    const { bridge, contents, window } = await openWindow('https://app.test/stream');
    const progress = [];
    const stream = bridge.stream('data.rows', { n: 450 }, { window: 3, onProgress: (p) => progress.push(plain(p)) });
    const items = [];
    for await (const chunk of stream) items.push(...chunk);
    assert.equal(items.length, 450);
    items.forEach((item, i) => assert.equal(item, `${String(i).padStart(8, '0')}xxxxxxxxxx`));
    assert.deepEqual(plain(await stream.result), { items: 450, chunks: 5 });
    assert.deepEqual(
      progress.map((p) => [p.seq, p.done, p.total]),
      [0, 1, 2, 3, 4].map((seq) => [seq, Math.min(450, (seq + 1) * 100), 450]),
    );
    const request = sent.findLast((message) => message.method === 'data.rows');
    assert.deepEqual(request.params, { n: 450, $meta: { stream: { window: 3 } } });
    assert.deepEqual(request.$caller, { window: contents.id, frame: 'https://app.test/stream' });
    window.close();
  });

  test('a slow page slows the generator: main pushes only what the page gave credit for', async () => {
    const { bridge, contents, window } = await openWindow('https://app.test/slow');
    await client.call('data.reset');
    const stream = bridge.stream('data.rows', { n: 1_000_000 }, { window: 2 });
    const first = await stream.next();
    assert.equal(first.value.length, 100);
    await sleep(300); // the page takes nothing more for a while
    const pushed = contents.sent.filter((m) => m.channel === 'bridge:chunk').length;
    const { pulled } = await client.call('data.state');
    // The page: 1 taken + 2 (window); main: up to 2 more taken from the host; the host: 2 + 1.
    assert.ok(pushed <= 3, `main pushed ${pushed} chunks to a page that took 1`);
    assert.ok(pulled <= 9 * 100, `the generator ran ahead: ${pulled} items`);
    await stream.return();
    assert.equal((await closedCount(1)).closed, 1, 'break closed the generator on the host');
    await assert.rejects(stream.result, (error) => error.name === 'AbortError');
    window.close();
  });

  test('aborting the signal cancels across both hops; errors keep their code', async () => {
    const { bridge, page, window } = await openWindow('https://app.test/abort');
    await client.call('data.reset');
    const controller = new page.window.AbortController();
    const stream = bridge.stream('data.rows', { n: 1_000_000, delay: 0.001 }, { signal: controller.signal });
    await stream.next();
    controller.abort();
    await assert.rejects(stream.next(), (error) => error.name === 'AbortError');
    assert.equal((await closedCount(1)).closed, 1);

    const items = [];
    const error = await (async () => {
      try {
        for await (const chunk of bridge.stream('data.rows', { n: 1000, fail_at: 150 })) items.push(...chunk);
      } catch (caught) {
        return caught;
      }
    })();
    assert.ok(error instanceof bridge.RpcError);
    assert.equal(error.code, 1001);
    assert.equal(items.length, 150); // what the generator yielded before it raised, then the error

    await assert.rejects(
      (async () => {
        for await (const chunk of bridge.stream('data.other', {})) void chunk;
      })(),
      (e) => e.code === ErrorCodes.MethodNotFound,
    );
    window.close();
  });

  test('closing the window stops its streams on the host', async () => {
    const { bridge, window } = await openWindow('https://app.test/closing');
    await client.call('data.reset');
    const stream = bridge.stream('data.rows', { n: 1_000_000 }, { window: 2 });
    await stream.next();
    window.close();
    assert.equal((await closedCount(1)).closed, 1);
  });
});
