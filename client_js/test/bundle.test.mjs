// The frozen sidecar (`bridge bundle` of examples/app.py, onefile and onedir) under the Node
// transport and the Tauri shell-plugin stand-in: calls, events, a stream, cancellation, close,
// and no process left behind. The builds come from tests/test_bundle.py, which caches them
// keyed by a hash of their inputs (a first run builds for ~10-60 s each; later runs reuse them).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pythonCommand, repoRoot } from '../test-support/host.mjs';
import { installTauriShell } from '../test-support/tauri-shell.mjs';
import { CallCancelledError, spawnSidecar } from '../src/node.js';
import { createTauriSidecar } from '../src/tauri.js';

const linux = process.platform === 'linux';

/** The build's JSON, or a reason to skip; under CI a missing PyInstaller fails instead. */
function build(mode) {
  try {
    const out = execFileSync(pythonCommand(), ['tests/test_bundle.py', mode], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 900_000,
    });
    return JSON.parse(out);
  } catch (error) {
    if (error.status === 3 && !process.env.CI) return { skip: String(error.stderr).trim() };
    throw new Error(`could not build the ${mode} bundle: ${error.stderr || error.message}`);
  }
}

/** Pids of live processes running `executable` (zombies count as gone: pid 1 here may not reap). */
function processesOf(executable) {
  const target = realpathSync(executable);
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/exe`) !== target) continue;
      const state = readFileSync(`/proc/${entry}/stat`, 'latin1').split(') ').pop().split(' ')[0];
      if (state !== 'Z') pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

/** The folder a onefile bundle's Python (`pid`) runs from: where its bootloader unpacked it (`_MEI...`). */
function unpackedDir(pid) {
  const maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
  const match = /\s(\/\S*\/_MEI[^/\s]+)\//.exec(maps);
  assert.ok(match, `no _MEI folder mapped by ${pid}`);
  return match[1];
}

/** Wait (up to `ms`) until no live process runs `executable`; returns those still there. */
async function settled(executable, ms = 10_000) {
  const deadline = Date.now() + ms;
  let left = processesOf(executable);
  while (left.length && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = processesOf(executable);
  }
  return left;
}

for (const mode of ['onefile', 'onedir']) {
  describe(`the ${mode} bundle through spawnSidecar`, { skip: !linux && 'uses /proc', timeout: 900_000 }, () => {
    let built;
    let client;
    let workdir;

    before(() => {
      built = build(mode);
      workdir = mkdtempSync(join(tmpdir(), 'bridge-bundle-test-'));
    }, { timeout: 900_000 });

    after(async () => {
      if (client && !client.closed) await client.close();
      if (workdir) rmSync(workdir, { recursive: true, force: true });
    });

    test('spawns as the command, with no Python or sources around, and answers', async (t) => {
      if (built.skip) return t.skip(built.skip);
      client = await spawnSidecar({
        command: built.executable,
        args: ['--plugin', 'hello'],
        cwd: workdir,
        env: { BRIDGE_LOG_LEVEL: 'warning', PYTHONPATH: '', PYTHONHOME: '' },
        onStderr: null,
        readyTimeout: 30_000,
      });
      assert.equal(client.ready.name, 'notes-example');
      assert.equal(client.ready.framing, 'ndjson');
      if (mode === 'onedir') assert.equal(client.ready.pid, client.process.pid);
      assert.equal(await client.call('math.add', { a: 20, b: 22 }), 42);
      assert.equal(await client.call('hello.greet', { name: 'Tauri' }), 'Hello, Tauri!');
    });

    test('events, a stream and cancellation', async (t) => {
      if (built.skip) return t.skip(built.skip);
      const changed = new Promise((resolve) => client.on('notes.changed', resolve));
      const note = await client.call('notes.create', { note: { title: 'Frozen', tags: ['x'] } });
      assert.deepEqual(await changed, { id: note.id, action: 'created' });

      const titles = [];
      const exported = client.stream('notes.export', { repeat: 50 }, { window: 2 });
      for await (const items of exported) titles.push(...items);
      assert.equal(titles.length, 100);
      assert.deepEqual(titles.slice(0, 2), ['Welcome', 'Frozen']);
      assert.equal((await exported.result).items, 100);

      const controller = new AbortController();
      const slow = client.call('notes.sync', { seconds: 30 }, { signal: controller.signal });
      assert.equal(await client.call('math.add', [1, 1]), 2); // read in order: the sync is running
      controller.abort();
      await assert.rejects(slow, CallCancelledError);
      assert.equal(await client.call('notes.get', { id: note.id }).then((n) => n.title), 'Frozen');
    });

    test('close() ends stdin, the host exits 0, and no process is left', async (t) => {
      if (built.skip) return t.skip(built.skip);
      const pids = processesOf(built.executable);
      assert.ok(pids.includes(client.process.pid), `running: ${pids}`);
      assert.equal(pids.length, mode === 'onefile' ? 2 : 1, 'onefile: the bootloader and its Python child');
      assert.equal(await client.close(), 0);
      assert.deepEqual(await settled(built.executable), []);
    });
  });
}

describe('the onefile bundle as a Tauri sidecar', { skip: !linux && 'uses /proc', timeout: 900_000 }, () => {
  let built;
  let appDir;

  before(() => {
    built = build('onefile');
    appDir = mkdtempSync(join(tmpdir(), 'bridge-tauri-app-'));
  }, { timeout: 900_000 });

  after(() => {
    if (appDir) rmSync(appDir, { recursive: true, force: true });
  });

  /** Spawn the installed sidecar as the example's page does, with the shell plugin's rules. */
  async function spawnInstalled(t) {
    // Tauri's bundler copies src-tauri/binaries/NAME-TRIPLE beside the app's executable as NAME.
    const installed = join(appDir, built.name);
    copyFileSync(built.executable, installed);
    const entry = `binaries/${built.name}`;
    const shell = installTauriShell({
      tauriConf: { bundle: { externalBin: [entry] } },
      capabilities: [{
        windows: ['main'],
        permissions: [{ identifier: 'shell:allow-spawn', allow: [{ name: entry, sidecar: true, args: ['serve'] }] },
          'shell:allow-stdin-write', 'shell:allow-kill'],
      }],
      sidecars: { [entry]: { command: installed, cwd: appDir } },
    });
    t.after(() => shell.uninstall());
    const client = await createTauriSidecar({
      Command: shell.module.Command,
      program: `src-tauri/binaries/${built.name}-${built.triple}`, // the file bridge bundle wrote
      args: ['serve'],
      env: { BRIDGE_LOG_LEVEL: 'warning' },
      onStderr: null,
      readyTimeout: 30_000,
    });
    assert.equal(shell.spawned[0].program, entry);
    return { client, installed };
  }

  test('resolved by the name Tauri gives it, called, closed: it exits 0 and its unpacked folder is gone', async (t) => {
    if (built.skip) return t.skip(built.skip);
    const { client, installed } = await spawnInstalled(t);
    assert.equal(await client.call('math.add', [2, 3]), 5);
    const titles = [];
    for await (const items of client.stream('notes.export', {})) titles.push(...items);
    assert.deepEqual(titles, ['Welcome']);
    const python = client.ready.pid;
    assert.notEqual(python, client.child.pid, 'onefile: $/ready comes from the bootloader\'s child');
    const unpacked = unpackedDir(python);
    assert.ok(existsSync(unpacked));
    // close() sends $/exit: the host exits by itself, and its bootloader deletes the folder
    // (a killed bootloader cannot: each kill left ~30 MB in the temp folder).
    assert.equal(await client.close(), 0);
    assert.deepEqual(await settled(installed), []);
    assert.equal(existsSync(unpacked), false, `${unpacked} left behind`);
  });

  test('killed by the plugin, as Tauri does at exit, it leaves no Python and no unpacked folder behind', async (t) => {
    if (built.skip) return t.skip(built.skip);
    const { client, installed } = await spawnInstalled(t);
    const unpacked = unpackedDir(client.ready.pid);
    t.after(() => rmSync(unpacked, { recursive: true, force: true })); // should the test fail
    const closed = new Promise((resolve) => client.onClose(resolve));
    // The plugin's kill() is SIGKILL, which the bootloader cannot pass on; the child asked
    // Linux for SIGTERM when its parent dies, stops by itself, and deletes the folder the
    // bootloader can no longer delete.
    await client.child.kill();
    await closed;
    assert.deepEqual(await settled(installed), []);
    assert.equal(existsSync(unpacked), false, `${unpacked} left behind`);
  });
});
