#!/usr/bin/env node
// State benchmark: patches per second with durability on, and catching up 10,000 versions,
// driven by the JavaScript client over real stdio pipes, each compared in the same run with
// a floor (echo calls on the same host) and a peer (one SQLite transaction per patch, no RPC;
// and the same transaction behind an RPC, bench/sqlite_peer.py served as an app), the phases
// of every round interleaved; then one at a time on hosts just started on new databases.
// Host CPU per patch from /proc/<pid>/task/*/schedstat.
// Usage: node bench/state.mjs [--quick] [--json out.json] [--against DIR]
// (--against DIR: also measure the state plugin of another checkout, e.g. a copy of the tree
// before a change, in the same rounds, interleaved with this one; its bridge is imported from DIR.)
// Informational: figures and ratios are printed; exit code 0 unless the driver breaks.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { spawnSidecar } from '../client_js/src/node.js';
import { checkout, REPO, resolvePython } from './env.mjs';

const quick = process.argv.includes('--quick');
const jsonOut = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : null;
const N = quick ? 2000 : 10000; // patches per phase
const BEHIND = quick ? 2000 : 10000; // versions a subscriber catches up
const WINDOW = 64; // calls outstanding when pipelined
const ROUNDS = quick ? 1 : 3;
const python = resolvePython().exe;
const againstAt = process.argv.indexOf('--against');
const against = againstAt > 0 ? checkout(process.argv[againstAt + 1], (message) => {
  console.error(message);
  process.exit(2);
}) : null;

/** The trees measured: this one, and the one given with --against. */
const SIDES = [{ label: 'this', cwd: REPO }, ...(against ? [{ label: against.label, cwd: against.dir }] : [])];

async function host(dir, env = {}, cwd = REPO) {
  return spawnSidecar({
    command: python,
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--plugin', 'state'],
    cwd,
    env: { ...process.env, BRIDGE_STATE_PATH: path.join(dir, 'state.sqlite3'), BRIDGE_LOG_LEVEL: 'warning', ...env },
  });
}

/** The peer's transaction behind an RPC: bench/sqlite_peer.py served as an app. */
async function peerHost(dir, mode) {
  return spawnSidecar({
    command: python,
    args: ['-m', 'bridge', 'serve', 'bench.sqlite_peer:app'],
    cwd: REPO,
    env: { ...process.env, PEER_DB: path.join(dir, 'peer-rpc.sqlite3'), PEER_SYNCHRONOUS: mode, BRIDGE_LOG_LEVEL: 'warning' },
  });
}

/** CPU seconds a process's threads have run, from /proc/<pid>/task/<tid>/schedstat (in ns). */
function cpuSeconds(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e9;
}

/** `pipelined(...)` with the host's CPU per call: `{ perS, cpuUs }`. */
async function measured(pid, count, window, make) {
  const cpu = cpuSeconds(pid);
  const perS = await pipelined(count, window, make);
  return { perS, cpuUs: ((cpuSeconds(pid) - cpu) / count) * 1e6 };
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

const medianOf = (xs, key) => median(xs.map((x) => x[key]));
const range = (xs, key) => [Math.min(...xs.map((x) => x[key])), Math.max(...xs.map((x) => x[key]))];

/** One mode: every round runs each host's phases, then the peer bare and behind an RPC. */
async function throughput(mode) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-state-bench-'));
  const clients = [];
  try {
    for (const [k, side] of SIDES.entries()) {
      const sub = path.join(dir, `h${k}`);
      clients.push(await host(sub, { BRIDGE_STATE_SYNCHRONOUS: mode }, side.cwd));
    }
    const peerClient = await peerHost(dir, mode);
    clients.push(peerClient);
    const rounds = SIDES.map(() => ({ echo: [], piped: [], echoSerial: [], serial: [] }));
    const peer = [];
    const peerRpc = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const [k, client] of clients.slice(0, SIDES.length).entries()) {
        const pid = client.process.pid;
        const m = rounds[k];
        m.echo.push(await measured(pid, N, WINDOW, () => client.call('rpc.ping')));
        m.piped.push(await measured(pid, N, WINDOW, (i) => client.call('state.patch', patchOf(`p${r}`)(i))));
        m.echoSerial.push(await measured(pid, N / 10, 1, () => client.call('rpc.ping')));
        m.serial.push(await measured(pid, N / 10, 1, (i) => client.call('state.patch', patchOf(`s${r}`)(i))));
      }
      const bare = JSON.parse(execFileSync(python, [path.join(REPO, 'bench', 'sqlite_peer.py'), String(N / 10), mode,
        path.join(dir, `peer${r}.sqlite3`)], { encoding: 'utf8' }));
      peer.push({ perS: bare.per_s, cpuUs: bare.cpu_us });
      peerRpc.push(await measured(peerClient.process.pid, N / 10, 1, (i) => peerClient.call('peer.commit', patchOf(`s${r}`)(i))));
    }
    const hosts = SIDES.map((side, k) => {
      const out = { label: side.label };
      for (const [phase, xs] of Object.entries(rounds[k])) {
        out[phase] = { perS: medianOf(xs, 'perS'), cpuUs: medianOf(xs, 'cpuUs'), range: range(xs, 'perS'), each: xs };
      }
      // ratios to the peer of the same round, so a slow minute moves both sides alike
      out.serialVsPeer = range(ratios(rounds[k].serial, peer), 'ratio');
      out.serialVsPeerRpc = range(ratios(rounds[k].serial, peerRpc), 'ratio');
      out.pipedVsPeer = range(ratios(rounds[k].piped, peer), 'ratio');
      return out;
    });
    return { mode, hosts, peer: { perS: medianOf(peer, 'perS'), cpuUs: medianOf(peer, 'cpuUs'), range: range(peer, 'perS'), each: peer },
      peerRpc: { perS: medianOf(peerRpc, 'perS'), cpuUs: medianOf(peerRpc, 'cpuUs'), range: range(peerRpc, 'perS'), each: peerRpc } };
  } finally {
    for (const client of clients) await client.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One patch at a time on a host just started on a new database (synchronous=full): the first
 * N / 10 patches, while the WAL file still grows (see handlers/state/store.py, WAL_PAGES),
 * against the bare peer on a new database of its own in the same round. */
async function freshStart() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bridge-state-bench-'));
  const runs = SIDES.map(() => []);
  const peer = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const [k, side] of SIDES.entries()) {
        const client = await host(path.join(dir, `fresh${r}-${k}`), { BRIDGE_STATE_SYNCHRONOUS: 'full' }, side.cwd);
        try {
          await client.call('rpc.ping');
          runs[k].push(await measured(client.process.pid, N / 10, 1, (i) => client.call('state.patch', patchOf(`f${r}`)(i))));
        } finally {
          await client.close();
        }
      }
      const bare = JSON.parse(execFileSync(python, [path.join(REPO, 'bench', 'sqlite_peer.py'), String(N / 10), 'full',
        path.join(dir, `fresh-peer${r}.sqlite3`)], { encoding: 'utf8' }));
      peer.push({ perS: bare.per_s, cpuUs: bare.cpu_us });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    peer: { perS: medianOf(peer, 'perS'), each: peer },
    hosts: SIDES.map((side, k) => ({ label: side.label, perS: medianOf(runs[k], 'perS'), cpuUs: medianOf(runs[k], 'cpuUs'),
      range: range(runs[k], 'perS'), vsPeer: range(ratios(runs[k], peer), 'ratio'), each: runs[k] })),
  };
}

/** Per round, ``mine.perS / theirs.perS``. */
function ratios(mine, theirs) {
  return mine.map((m, r) => ({ ratio: m.perS / theirs[r].perS }));
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
const spread = ([lo, hi], digits = 2) => (lo.toFixed(digits) === hi.toFixed(digits) ? `${lo.toFixed(digits)}` : `${lo.toFixed(digits)}-${hi.toFixed(digits)}`);
const results = { modes: [], rounds: ROUNDS, against: against?.label ?? null };
for (const mode of ['full', 'normal']) {
  const r = await throughput(mode);
  results.modes.push(r);
  console.log(`synchronous=${mode} (medians of ${ROUNDS} round(s); ratios: the range over rounds, each against the same round's peer):`);
  console.log(`  peer, one SQLite transaction per patch, no RPC: ${fmt(r.peer.perS)}/s (${fmt(r.peer.range[0])}-${fmt(r.peer.range[1])}), ` +
    `CPU ${r.peer.cpuUs.toFixed(0)} us/patch; behind an RPC, one at a time (bench.sqlite_peer:app): ${fmt(r.peerRpc.perS)}/s = ` +
    `${(r.peerRpc.perS / r.peer.perS).toFixed(2)}x the peer, host CPU ${r.peerRpc.cpuUs.toFixed(0)} us/call`);
  for (const h of r.hosts) {
    const tag = against ? `[${h.label}] ` : '';
    console.log(`  ${tag}pipelined (window ${WINDOW}): ${fmt(h.piped.perS)} patches/s = ${spread(h.pipedVsPeer, 1)}x the peer, ` +
      `host CPU ${h.piped.cpuUs.toFixed(0)} us/patch; ${(h.piped.perS / h.echo.perS).toFixed(2)}x echo calls/s (${fmt(h.echo.perS)})`);
    console.log(`  ${tag}one at a time: ${fmt(h.serial.perS)} patches/s = ${spread(h.serialVsPeer)}x the peer, ` +
      `${spread(h.serialVsPeerRpc)}x the peer behind an RPC, host CPU ${h.serial.cpuUs.toFixed(0)} us/patch; ` +
      `${(h.serial.perS / h.echoSerial.perS).toFixed(2)}x echo round trips/s (${fmt(h.echoSerial.perS)})`);
  }
}
const fresh = await freshStart();
results.freshStart = fresh;
console.log(`synchronous=full, one at a time on a host just started on a new database (the first ${N / 10} patches; ` +
  `the peer on a new database too: ${fmt(fresh.peer.perS)}/s):`);
for (const h of fresh.hosts) {
  console.log(`  ${against ? `[${h.label}] ` : ''}${fmt(h.perS)} patches/s (${fmt(h.range[0])}-${fmt(h.range[1])}) = ` +
    `${spread(h.vsPeer)}x the peer, host CPU ${h.cpuUs.toFixed(0)} us/patch`);
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
