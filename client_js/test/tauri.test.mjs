// The Tauri transport (src/tauri.js) and examples/tauri against the REAL
// '@tauri-apps/plugin-shell' JS, its IPC answered through the official `mockIPC` by
// test-support/tauri-shell.mjs (the plugin's Rust side over node:child_process, under the
// example's own tauri.conf.json and capability file), which runs the real Python host.
// tests/tauri/ runs the same in a real Tauri webview.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { FakeDocument } from '../test-support/fake-dom.mjs';
import { nextEvent, processExists, pythonCommand } from '../test-support/host.mjs';
import { installTauriShell, scopedArgs } from '../test-support/tauri-shell.mjs';
import { CallCancelledError, ConnectionClosedError, ErrorCodes, RpcError, createTauriSidecar, sidecarName } from '../src/tauri.js';

register('../test-support/loader.mjs', import.meta.url);

const example = new URL('../../examples/tauri/', import.meta.url);
const readJson = (path) => JSON.parse(readFileSync(new URL(path, example), 'utf8'));
const tauriConf = readJson('src-tauri/tauri.conf.json');
const capabilities = [readJson('src-tauri/capabilities/default.json')];
/**
 * What stands for the frozen sidecar binary: the entry script `bridge bundle` freezes, serving
 * tests/tauri/sidecar_app.py (the demo app the example bundles, plus a stream).
 */
const bridgeHost = {
  command: pythonCommand(),
  args: ['-c', "import sys; from bridge.bundle import frozen_main; sys.exit(frozen_main('sidecar_app:app'))"],
  cwd: fileURLToPath(new URL('../../tests/tauri/', import.meta.url)),
};
const quietHost = { BRIDGE_LOG_LEVEL: 'warning' };

describe('createTauriSidecar against the real host', { timeout: 20_000 }, () => {
  let shell;
  let client;
  const markDir = mkdtempSync(join(tmpdir(), 'bridge-tauri-mark-'));
  const shutdownMark = join(markDir, 'hook-ran');
  const traceListeners = new Set();

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

  before(async () => {
    shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
    client = await createTauriSidecar({
      Command: shell.module.Command,
      program: 'binaries/bridge-host',
      args: ['serve'],
      env: { ...quietHost, SIDECAR_SHUTDOWN_MARK: shutdownMark },
      trace: (direction, message) => traceListeners.forEach((listener) => listener(direction, message)),
    });
  });

  after(async () => {
    if (client && !client.closed) await client.close();
    shell.uninstall();
  });

  test('the sidecar is spawned as configured, with NDJSON forced, and sends $/ready', () => {
    const [spawned] = shell.spawned;
    assert.equal(spawned.program, 'binaries/bridge-host');
    assert.deepEqual(spawned.args, ['serve']);
    assert.deepEqual(spawned.ran, ['serve']);
    assert.deepEqual(spawned.options, {
      env: { BRIDGE_LOG_LEVEL: 'warning', SIDECAR_SHUTDOWN_MARK: shutdownMark, BRIDGE_FRAMING: 'ndjson' }, sidecar: true,
    });
    assert.equal(client.ready.framing, 'ndjson');
    assert.equal(client.ready.pid, client.child.pid);
  });

  test('calls by name and by position, large multi-byte payloads and concurrent calls', async () => {
    assert.equal(await client.call('system.ping'), 'pong');
    assert.equal(await client.call('demo.add', [1, 2]), 3);
    assert.equal(await client.call('demo.add', { a: 2, b: 5 }), 7);
    const big = '😀ab€ \u2028 "q" \\ \n'.repeat(40_000);
    assert.equal(await client.call('demo.echo', { value: big }), big);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => client.call('demo.add', { a: i, b: 1 })));
    assert.deepEqual(
      results,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  });

  test('an application error keeps its code, message and data', async () => {
    const error = await client.call('demo.fail', { message: 'nope' }).then(() => assert.fail('resolved'), (e) => e);
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, 1001);
    assert.equal(error.message, 'nope');
    assert.equal(typeof error.data.hint, 'string');
  });

  test('events and progress', async () => {
    const event = nextEvent((cb) => client.on('demo.tick', cb));
    await client.call('demo.emit', { event: 'demo.tick', payload: { n: 1 } });
    assert.deepEqual(await event, { n: 1 });
    const values = [];
    assert.equal(await client.call('demo.count', { n: 3 }, { onProgress: (value) => values.push(value) }), 3);
    assert.deepEqual(values, [1, 2, 3].map((done) => ({ done, total: 3 })));
  });

  test('a stream is paced by credit: the host never runs more than the window ahead of the chunks taken', async () => {
    const credit = 2;
    let received = 0;
    let credited = 0;
    let ahead = 0;
    const watch = (direction, message) => {
      if (direction === 'receive' && message.method === '$/stream') ahead = Math.max(ahead, ++received - credited);
      if (direction === 'send' && message.method === '$/stream/credit') credited += message.params.credit;
    };
    traceListeners.add(watch);
    try {
      const items = [];
      for await (const chunk of client.stream('data.rows', { n: 95 }, { window: credit })) items.push(...chunk);
      assert.deepEqual(items, Array.from({ length: 95 }, (_, i) => `row ${i}`));
      assert.equal(received, 10);
      assert.equal(credited, 10, 'one credit per chunk taken');
      assert.ok(ahead <= credit, `${ahead} chunks arrived ahead of the credit`);
    } finally {
      traceListeners.delete(watch);
    }
  });

  test('aborting a call sends $/cancelRequest and the host answers -32800', async () => {
    const controller = new AbortController();
    const reachedHost = nextTraced('send', (message) => message.method === 'demo.sleep');
    const call = client.call('demo.sleep', { seconds: 30 }, { signal: controller.signal });
    const { id } = await reachedHost;
    assert.equal(await client.call('system.ping'), 'pong'); // the host reads in order: the sleep is running
    const hostReply = nextTraced('receive', (message) => message.id === id);
    controller.abort();
    await assert.rejects(call, CallCancelledError);
    assert.equal((await hostReply).error.code, ErrorCodes.RequestCancelled);
  });

  test('close() sends $/exit: the call in flight finishes, the shutdown hooks run, the host exits 0', async () => {
    assert.equal(client.ready.capabilities.exit, '$/exit');
    const pid = client.child.pid;
    const sent = nextTraced('send', (message) => message.method === 'demo.sleep');
    const inFlight = client.call('demo.sleep', { seconds: 0.3 });
    await sent;
    assert.equal(await client.close(), 0, 'exited by itself, not killed');
    assert.equal(await inFlight, 0.3);
    assert.equal(readFileSync(shutdownMark, 'utf8'), 'shut down');
    assert.equal(processExists(pid), false);
    await assert.rejects(client.call('system.ping'), ConnectionClosedError);
  });

  after(() => rmSync(markDir, { recursive: true, force: true }));
});

describe('createTauriSidecar edge cases', { timeout: 20_000 }, () => {
  test('close() kills a host still busy after closeTimeout: the call rejects, no hook runs', async () => {
    const markDir = mkdtempSync(join(tmpdir(), 'bridge-tauri-mark-'));
    const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
    try {
      const mark = join(markDir, 'hook-ran');
      const client = await createTauriSidecar({
        Command: shell.module.Command, args: ['serve'], env: { ...quietHost, SIDECAR_SHUTDOWN_MARK: mark }, closeTimeout: 300,
      });
      const pid = client.child.pid;
      const inFlight = client.call('demo.sleep', { seconds: 30 });
      assert.equal(await client.call('system.ping'), 'pong'); // read in order: the sleep is running
      assert.equal(await client.close(), null, 'killed by a signal, so no exit code');
      const error = await inFlight.then(() => assert.fail('resolved'), (e) => e);
      assert.ok(error instanceof ConnectionClosedError);
      assert.equal(error.signal, 9);
      assert.equal(processExists(pid), false);
      assert.equal(existsSync(mark), false);
    } finally {
      shell.uninstall();
      rmSync(markDir, { recursive: true, force: true });
    }
  });

  test("with encoding 'raw' the output arrives as byte chunks and is split into lines", async () => {
    const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
    try {
      const client = await createTauriSidecar({ Command: shell.module.Command, args: ['serve'], env: quietHost, encoding: 'raw' });
      const big = 'é中😀'.repeat(50_000);
      assert.equal(await client.call('demo.echo', { value: big }), big);
      await client.close();
    } finally {
      shell.uninstall();
    }
  });

  test('a capability with fixed args runs those, whatever args the page passes (scope.rs)', async () => {
    const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
    try {
      const client = await createTauriSidecar({ Command: shell.module.Command, args: ['serve', 'other:app', '--debug'], env: quietHost });
      assert.deepEqual(shell.spawned[0].args, ['serve', 'other:app', '--debug']);
      assert.deepEqual(shell.spawned[0].ran, ['serve']);
      assert.deepEqual(await client.call('sidecar.argv'), ['serve'], 'what the sidecar itself was given');
      await client.close();
    } finally {
      shell.uninstall();
    }
  });

  test('what the capability does not allow is refused before anything runs', async () => {
    const other = { identifier: 'shell:allow-spawn', allow: [{ name: 'binaries/other', sidecar: true }] };
    const shell = installTauriShell({
      tauriConf: { bundle: { externalBin: ['binaries/bridge-host', 'binaries/other', 'binaries/unlisted'] } },
      capabilities: [...capabilities, { windows: ['other-window'], permissions: [other] }],
      sidecars: { 'binaries/bridge-host': bridgeHost },
    });
    try {
      const { Command } = shell.module;
      await assert.rejects(createTauriSidecar({ Command, program: 'binaries/elsewhere' }), /could not spawn the bridge sidecar: sidecar not configured under `tauri.conf.json > bundle > externalBin`: binaries\/elsewhere/);
      await assert.rejects(createTauriSidecar({ Command, program: 'binaries/other' }), /Scoped command binaries\/other not found/, 'granted to another window only');
      await assert.rejects(createTauriSidecar({ Command: {} }), /Command class/);
      assert.deepEqual(shell.running(), []);
    } finally {
      shell.uninstall();
    }
  });

  test('a host that dies before $/ready rejects with its exit code and stderr', async () => {
    const broken = { command: pythonCommand(), args: ['-c', 'import sys; sys.stderr.write("no such app\\n"); sys.exit(3)'] };
    const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': broken } });
    try {
      await assert.rejects(
        createTauriSidecar({ Command: shell.module.Command, args: ['serve'], onStderr: null }),
        (error) => error instanceof ConnectionClosedError && /exited with code 3 unexpectedly; its stderr ended with:\nno such app/.test(error.message),
      );
    } finally {
      shell.uninstall();
    }
  });
});

test('examples/tauri: the page starts the sidecar, calls it, and stops it when the page goes away', { timeout: 20_000 }, async () => {
  const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
  const html = readFileSync(new URL('index.html', example), 'utf8');
  const document = new FakeDocument(html);
  globalThis.document = document; // `window` is the EventTarget installTauriShell() made
  process.env.BRIDGE_LOG_LEVEL = 'warning';
  try {
    const [script] = FakeDocument.scripts(html);
    assert.equal(script.type, 'module');
    const page = await import(new URL(`.${script.src}`, example).href);
    const log = document.getElementById('log');
    const click = (id) => document.getElementById(id).click();
    await log.waitForText('host ready: bridge-builtins');
    click('ping');
    await log.waitForText('system.ping -> "pong"');
    click('add');
    await log.waitForText('demo.add -> 5');
    click('count');
    await log.waitForText('demo.count -> 5');
    assert.equal(document.getElementById('progress').textContent, '5/5');
    click('emit');
    await log.waitForText('event demo.tick {"tick":1}');
    click('fail');
    await log.waitForText('demo.fail failed: RpcError 1001: this call fails on purpose');
    click('sleep');
    click('cancel');
    await log.waitForText('demo.sleep failed: AbortError');

    const client = await page.bridge;
    const pid = client.child.pid;
    const closed = new Promise((resolve) => client.onClose(resolve));
    globalThis.window.dispatchEvent(new Event('pagehide'));
    await closed;
    assert.equal(processExists(pid), false);
    assert.deepEqual(shell.running(), []);
  } finally {
    shell.uninstall();
    delete globalThis.document;
  }
});

describe('sidecarName: the externalBin entry Tauri knows the sidecar by', () => {
  test('an entry is kept as it is', () => {
    assert.equal(sidecarName('binaries/bridge-host'), 'binaries/bridge-host');
    assert.equal(sidecarName('/opt/tools/sidecar'), '/opt/tools/sidecar');
    assert.equal(sidecarName('bin/my-tool-x86_64'), 'bin/my-tool-x86_64'); // not a whole triple
  });

  test("the file `bridge bundle` wrote becomes its entry: the path from src-tauri/, the triple dropped", () => {
    assert.equal(sidecarName('src-tauri/binaries/notes-x86_64-unknown-linux-gnu'), 'binaries/notes');
    assert.equal(sidecarName('/home/me/app/src-tauri/binaries/notes-aarch64-apple-darwin'), 'binaries/notes');
    assert.equal(sidecarName('C:\\app\\src-tauri\\binaries\\notes-x86_64-pc-windows-msvc.exe'), 'binaries/notes');
    assert.equal(sidecarName('binaries/notes-x86_64-unknown-linux-musl'), 'binaries/notes');
    assert.equal(sidecarName('./binaries/notes-armv7-unknown-linux-gnueabihf'), 'binaries/notes');
  });

  test('createTauriSidecar passes the resolved name to Command.sidecar', async () => {
    const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': bridgeHost } });
    try {
      const client = await createTauriSidecar({
        Command: shell.module.Command,
        program: 'src-tauri/binaries/bridge-host-x86_64-unknown-linux-gnu',
        args: ['serve'],
        env: quietHost,
      });
      assert.equal(shell.spawned[0].program, 'binaries/bridge-host');
      assert.equal(await client.call('system.ping'), 'pong');
      await client.close();
    } finally {
      shell.uninstall();
    }
  });
});

describe('the shell scope of a spawn: the args run are built from the allow entry (scope.rs ShellScope::_prepare)', () => {
  test('fixed args replace the caller\'s; validators take the caller\'s at their position; the rest is dropped', () => {
    assert.deepEqual(scopedArgs('p', ['serve'], ['serve']), ['serve']);
    assert.deepEqual(scopedArgs('p', ['serve'], ['other', '--debug']), ['serve']);
    assert.deepEqual(scopedArgs('p', ['serve'], []), ['serve']);
    assert.deepEqual(scopedArgs('p', ['serve'], undefined), ['serve']);
    assert.deepEqual(scopedArgs('p', ['serve', { validator: '\\w+:app' }], ['x', 'my:app', 'extra']), ['serve', 'my:app']);
    assert.deepEqual(scopedArgs('p', false, ['serve']), []);
    assert.deepEqual(scopedArgs('p', true, ['a', 'b']), ['a', 'b']);
  });

  test('a validator is wrapped in ^...$ (not grouped) unless raw; a missing argument is refused', () => {
    assert.throws(() => scopedArgs('p', [{ validator: 'a' }], ['ab']), /position 0 was found, but failed regex validation \^a\$/);
    assert.deepEqual(scopedArgs('p', [{ validator: 'a|b' }], ['ax']), ['ax'], '^a|b$: an alternation is not anchored as a whole');
    assert.deepEqual(scopedArgs('p', [{ validator: 'a', raw: true }], ['xay']), ['xay']);
    assert.throws(() => scopedArgs('p', ['serve', { validator: '.+' }], ['serve']), /position 1 must match regex validation \^\.\+\$ but it was not found/);
    assert.throws(() => scopedArgs('p', [{ validator: '.+' }], 'one'), /received arguments in an unexpected format/);
  });
});
