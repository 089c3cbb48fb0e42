// One sidecar module (src/sidecar.js): the Node and Tauri transports share the `$/ready`
// handshake, line parsing, the stderr tail and the close error, and the transport-free
// Supervisor, exported from the package root, supervises either. The hosts are small Node
// scripts, so the transports' own behaviour is what is compared.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { nextEvent } from '../test-support/host.mjs';
import { installTauriShell } from '../test-support/tauri-shell.mjs';

const example = new URL('../../examples/tauri/', import.meta.url);
const readJson = (path) => JSON.parse(readFileSync(new URL(path, example), 'utf8'));
const tauriConf = readJson('src-tauri/tauri.conf.json');
const capabilities = [readJson('src-tauri/capabilities/default.json')];

/**
 * A Node script playing the host: it writes `stderr` to stderr, sends `$/ready`, and answers
 * `ping` with "pong", `print` with a line that is not JSON before "done", and `die` by exiting 7.
 */
function fakeHost(stderr) {
  const script = `
    const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
    process.stderr.write(${JSON.stringify(stderr)} + '\\n');
    send({ jsonrpc: '2.0', method: '$/ready', params: { version: 'fake', pid: process.pid, framing: process.env.BRIDGE_FRAMING, capabilities: {} } });
    require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
      const m = JSON.parse(line);
      if (m.method === 'die') { process.stderr.write('dying\\n'); process.exit(7); }
      if (m.method === 'print') process.stdout.write('not json\\n');
      send({ jsonrpc: '2.0', id: m.id, result: m.method === 'ping' ? 'pong' : 'done' });
    });
  `;
  return { command: process.execPath, args: ['-e', script] };
}

/** Start `fakeHost(stderr)` through each transport; `use(client, errors)` runs against both. */
async function withBoth(stderr, use) {
  const { spawnSidecar } = await import('@bridge-rpc/client/node');
  const { createTauriSidecar } = await import('@bridge-rpc/client/tauri');
  const host = fakeHost(stderr);
  const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': host } });
  const outcomes = {};
  try {
    for (const [name, start] of [
      ['node', (onError) => spawnSidecar({ ...host, onStderr: null, onError })],
      ['tauri', (onError) => createTauriSidecar({ Command: shell.module.Command, args: ['serve'], onStderr: null, onError })],
    ]) {
      const errors = [];
      const client = await start((error) => errors.push(error));
      try {
        outcomes[name] = await use(client, errors);
      } finally {
        if (!client.closed) await client.close();
      }
    }
  } finally {
    shell.uninstall();
  }
  return outcomes;
}

test('the Supervisor is exported from the package root; ./node and ./tauri re-export the same objects', async () => {
  const root = await import('@bridge-rpc/client');
  const node = await import('@bridge-rpc/client/node');
  const tauri = await import('@bridge-rpc/client/tauri');
  for (const name of ['Supervisor', 'SidecarCrashedError', 'QueueFullError', 'restartDelay', 'RESTART_DEFAULTS', 'HEALTH_DEFAULTS']) {
    assert.ok(root[name], `@bridge-rpc/client exports ${name}`);
    assert.equal(node[name], root[name], `./node re-exports the root's ${name}`);
    assert.equal(tauri[name], root[name], `./tauri re-exports the root's ${name}`);
  }
});

test('both transports keep the stderr tail and report a line that is not JSON the same way', async () => {
  const outcomes = await withBoth('host up', async (client, errors) => {
    assert.equal(await client.call('print'), 'done');
    return { tail: client.stderrTail, ready: client.ready.framing, errors: errors.map((e) => [e.message, e.line]) };
  });
  assert.deepEqual(outcomes.node.tail, ['host up']);
  assert.deepEqual(outcomes.tauri.tail, ['host up']);
  assert.equal(outcomes.node.ready, 'ndjson');
  assert.equal(outcomes.tauri.ready, 'ndjson');
  assert.deepEqual(outcomes.node.errors, [["ignored a line on the host's stdout that is not JSON: not json", 'not json']]);
  assert.deepEqual(outcomes.tauri.errors, [["ignored a line on the sidecar's stdout that is not JSON: not json", 'not json']]);
});

test('both transports close with the same error when the host dies mid-call', async () => {
  const outcomes = await withBoth('host up', async (client) => {
    const error = await client.call('die').then(() => assert.fail('resolved'), (e) => e);
    return { name: error.name, message: error.message, exitCode: error.exitCode, tail: client.stderrTail };
  });
  for (const [name, noun] of [
    ['node', 'host'],
    ['tauri', 'sidecar'],
  ]) {
    assert.deepEqual(outcomes[name], {
      name: 'ConnectionClosedError',
      message: `bridge ${noun} exited with code 7 unexpectedly; its stderr ended with:\nhost up\ndying`,
      exitCode: 7,
      tail: ['host up', 'dying'],
    });
  }
});

test("a Supervisor from the package root restarts a Tauri sidecar, the crash carrying the sidecar's stderr", { timeout: 20_000 }, async () => {
  const { Supervisor } = await import('@bridge-rpc/client');
  const { createTauriSidecar } = await import('@bridge-rpc/client/tauri');
  const shell = installTauriShell({ tauriConf, capabilities, sidecars: { 'binaries/bridge-host': fakeHost('sidecar up') } });
  const supervisor = new Supervisor({
    start: () => createTauriSidecar({ Command: shell.module.Command, args: ['serve'], onStderr: null }),
    restart: 'immediate',
    health: false,
  });
  try {
    await supervisor.start();
    const first = supervisor.client.child.pid;
    const crashed = nextEvent((cb) => supervisor.onState(cb), (event) => event.state === 'crashed');
    const readyAgain = nextEvent((cb) => supervisor.onState(cb), (event) => event.state === 'ready');
    process.kill(first, 'SIGKILL');
    const crash = await crashed;
    assert.equal(crash.reason, 'exited');
    assert.deepEqual(crash.stderr, ['sidecar up']);
    await readyAgain;
    assert.notEqual(supervisor.client.child.pid, first);
    assert.equal(await supervisor.call('ping'), 'pong');
  } finally {
    await supervisor.close();
    shell.uninstall();
  }
});
