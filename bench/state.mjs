#!/usr/bin/env node
// State benchmark: patches per second with durability on, and catching up 10,000 versions,
// driven by the JavaScript client over real stdio pipes, each compared in the same run with
// a floor (echo calls on the same host) and a peer (one SQLite transaction per patch, no RPC).
// Usage: node bench/state.mjs [--quick] [--json out.json]
// Informational: figures and ratios are printed; exit code 0 unless the driver breaks.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { spawnSidecar } from '../client_js/src/node.js';
import { REPO, resolvePython } from './env.mjs';

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
const N = quick ? 2000 : 10000; // patches per phase
const BEHIND = quick ? 2000 : 10000; // versions a subscriber catches up
const WINDOW = 64; // calls outstanding when pipelined
const ROUNDS = quick ? 1 : 3;
const python = resolvePython().exe;

async function host(dir, env = {}) {
  return spawnSidecar({
    command: python,
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--plugin', 'state'],
    cwd: REPO,
    env: { ...process.env, BRIDGE_STATE_PATH: path.join(dir, 'state.sqlite3'), BRIDGE_LOG_LEVEL: 'warning', ...env },
  });
}

/** `count` calls made by `make(i)`, at most `window` outstanding; calls per second. */
async function pipelined(count, window, make) {
  let next = 0;
  const start = performance.now();
  async function lane() {
    while (next < count) await make(next++);
  }
  await Promise.all(Array.from({ length: window }, lane));
  return count / ((performance.now() - start) / 1000);
}

const patchOf = (doc) => (i) => ({ doc, ops: [{ op: 'add', path: `/k${i % 100}`, value: i }] });

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function throughput(mode) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-state-bench-'));
  const client = await host(dir, { BRIDGE_STATE_SYNCHRONOUS: mode });
  try {
    const echo = [];
    const piped = [];
    const serial = [];
    const echoSerial = [];
    for (let r = 0; r < ROUNDS; r++) {
      echo.push(await pipelined(N, WINDOW, () => client.call('rpc.ping')));
      piped.push(await pipelined(N, WINDOW, (i) => client.call('state.patch', patchOf(`p${r}`)(i))));
      echoSerial.push(await pipelined(N / 10, 1, () => client.call('rpc.ping')));
      serial.push(await pipelined(N / 10, 1, (i) => client.call('state.patch', patchOf(`s${r}`)(i))));
    }
    const peer = JSON.parse(execFileSync(python, [path.join(REPO, 'bench', 'sqlite_peer.py'), String(N / 10), mode,
      path.join(dir, 'peer.sqlite3')], { encoding: 'utf8' })).per_s;
    return { mode, echo: median(echo), piped: median(piped), echoSerial: median(echoSerial),
      serial: median(serial), peer };
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Patches/s on a ~1 MiB document against a small one, same host: the cost of a patch should
 * not grow with the document (copy on write, size bounded without serialising it). */
async function largeDocument() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-state-bench-'));
  const client = await host(dir, { BRIDGE_STATE_SYNCHRONOUS: 'normal' });
  try {
    const items = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'x'.repeat(90)]));
    await client.call('state.set', { doc: 'large', value: { items } });
    await client.call('state.set', { doc: 'small', value: { items: {} } });
    const bytes = JSON.stringify({ items }).length;
    const large = [];
    const small = [];
    for (let r = 0; r < ROUNDS; r++) {
      small.push(await pipelined(N, WINDOW, (i) => client.call('state.patch', {
        doc: 'small', ops: [{ op: 'add', path: `/items/k${i % 100}`, value: 'y'.repeat(90) }] })));
      large.push(await pipelined(N, WINDOW, (i) => client.call('state.patch', {
        doc: 'large', ops: [{ op: 'replace', path: `/items/k${i % 10_000}`, value: 'y'.repeat(90) }] })));
    }
    return { bytes, large: median(large), small: median(small) };
  } finally {
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function catchUp() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-state-bench-'));
  const client = await host(dir, { BRIDGE_STATE_HISTORY: String(BEHIND), BRIDGE_STATE_SYNCHRONOUS: 'normal' });
  try {
    const doc = 'big';
    await pipelined(BEHIND, WINDOW, (i) => client.call('state.patch', {
      doc, ops: [{ op: 'add', path: `/k${i % 1000}`, value: { n: i, text: 'x'.repeat(20) } }] }));
    const now = (await client.call('state.get', { doc })).version;
    const since = now - BEHIND;
    const times = [];
    const compact = [];
    const full = [];
    let ops = 0;
    for (let r = 0; r < 5; r++) {
      let t = performance.now();
      const caught = await client.call('state.subscribe', { doc, since_version: since, compact: false });
      times.push(performance.now() - t);
      ops = caught.ops.length;
      if (caught.full || caught.to !== now) throw new Error('catch-up did not reach now');
      await client.call('state.unsubscribe', { subscription: caught.subscription });
      t = performance.now();
      const small = await client.call('state.subscribe', { doc, since_version: since });
      compact.push(performance.now() - t);
      if (!small.full) throw new Error('a compact catch-up of a small document sent ops');
      await client.call('state.unsubscribe', { subscription: small.subscription });
      t = performance.now();
      await client.call('state.get', { doc });
      full.push(performance.now() - t);
    }
    const restart = performance.now();
    await client.close();
    const again = await host(dir, { BRIDGE_STATE_HISTORY: String(BEHIND) });
    await again.call('state.get', { doc });
    const reopenMs = performance.now() - restart;
    const rss = rssMiB(again.process.pid);
    await again.close();
    return { behind: BEHIND, ops, catchUpMs: median(times), compactMs: median(compact), getMs: median(full), reopenMs, rss };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const results = { modes: [] };
for (const mode of ['full', 'normal']) {
  const r = await throughput(mode);
  results.modes.push(r);
  console.log(`synchronous=${mode}:`);
  console.log(`  pipelined (window ${WINDOW}): ${fmt(r.piped)} patches/s = ${(r.piped / r.echo).toFixed(2)}x echo calls/s (${fmt(r.echo)}), ` +
    `${(r.piped / r.peer).toFixed(1)}x the peer (one SQLite transaction per patch, no RPC: ${fmt(r.peer)}/s)`);
  console.log(`  one at a time:               ${fmt(r.serial)} patches/s = ${(r.serial / r.echoSerial).toFixed(2)}x echo round trips/s (${fmt(r.echoSerial)}), ` +
    `${(r.serial / r.peer).toFixed(2)}x the peer`);
}
const big = await largeDocument();
results.largeDocument = big;
console.log(`a ${(big.bytes / 2 ** 20).toFixed(2)} MiB document: ${fmt(big.large)} patches/s = ` +
  `${(big.large / big.small).toFixed(2)}x a small document's (${fmt(big.small)}), synchronous=normal, pipelined`);
const c = await catchUp();
results.catchUp = c;
console.log(`catch-up of ${c.behind} versions as ops (${c.ops} ops): ${c.catchUpMs.toFixed(1)} ms = ` +
  `${(c.catchUpMs / c.getMs).toFixed(1)}x a state.get of the whole document (${c.getMs.toFixed(2)} ms)`);
console.log(`catch-up of ${c.behind} versions, compact (the value, smaller here): ${c.compactMs.toFixed(2)} ms = ` +
  `${(c.compactMs / c.getMs).toFixed(1)}x the state.get`);
console.log(`restart with ${c.behind} versions of history: first reply after ${c.reopenMs.toFixed(0)} ms, host RSS ${c.rss.toFixed(0)} MiB`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
