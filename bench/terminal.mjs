#!/usr/bin/env node
// Benchmark: a program's output through bridge's terminal plugin to the Node client, against the
// floor (bench/pty_floor.py: the same program on a pty, its output copied to a pipe), in one run.
// Usage: node bench/terminal.mjs [--mb N] [--rounds N] [--echoes N] [--idle N] [--many N]
//                                 [--many-mb N] [--stall-mb N]
// Reports MB/s of output (target >= 0.8x the floor), keystroke echo round trip p50 (target
// <= 1.5x the floor), host memory per idle terminal, N terminals streaming at once (aggregate
// MB/s, against N floors at once), and the host's RSS while a reader that grants no credit faces
// --stall-mb of output (target: under 5 MiB above idle; the program must stop advancing).
// Every byte is counted; the echo is checked.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { spawnSidecar } from '../client_js/src/node.js';
import { REPO, childEnv, resolvePython } from './env.mjs';
import { round, summary, table } from './report.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MB = opt('mb', 50);
const ROUNDS = opt('rounds', 3);
const ECHOES = opt('echoes', 200);
const IDLE = opt('idle', 50);
const MANY = opt('many', 50);
const MANY_MB = opt('many-mb', 2);
const STALL_MB = opt('stall-mb', 1000);
const py = resolvePython();
const env = childEnv({});
const LINE = 80; // bytes a line, "\n" included: the pty makes it "\r\n" (81)
const lines = Math.round((MB * 1e6) / LINE);
const PRINT = `import sys\nw = sys.stdout.write\nfor i in range(${lines}): w('%079d\\n' % i)\nsys.stdout.flush()`;
const expected = lines * (LINE + 1);
const CAT = 'import sys\nwhile True:\n    c = sys.stdin.read(1)\n    if not c: break\n    sys.stdout.write(c); sys.stdout.flush()';

const status = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const hwm = (pid) => status(pid, 'VmHWM');
const rss = (pid) => status(pid, 'VmRSS');
const printing = (mb) => {
  const n = Math.round((mb * 1e6) / LINE);
  return { n, bytes: n * (LINE + 1), code: `import sys\nw = sys.stdout.write\nfor i in range(${n}): w('%079d\\n' % i)\nsys.stdout.flush()` };
};

/** The floor: bytes of the program's output read from pty_floor.py's stdout. */
function floorOutput() {
  return new Promise((resolve, reject) => {
    const child = spawn(py.exe, ['bench/pty_floor.py', py.exe, '-c', PRINT], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'inherit'] });
    let got = 0;
    const start = performance.now();
    child.stdout.on('data', (chunk) => {
      got += chunk.length;
    });
    child.on('error', reject);
    child.on('exit', () => resolve({ bytes: got, ms: performance.now() - start }));
  });
}

/** Every byte a program prints, from its first: created paused, attached, then resumed. */
async function readAll(client, id, window) {
  const stream = client.stream('terminal.attach', { id }, { window });
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // the restore: the watcher is attached
  await client.call('terminal.resume', { id });
  let got = 0;
  for (let step = await it.next(); !step.done; step = await it.next()) {
    for (const item of step.value) got += item.data ? Buffer.byteLength(item.data) : 0;
  }
  return got;
}

async function bridgeOutput(client) {
  const start = performance.now();
  const { id } = await client.call('terminal.create', { command: py.exe, args: ['-c', PRINT], rows: 24, cols: 80, paused: true });
  const got = await readAll(client, id, 64);
  return { bytes: got, ms: performance.now() - start };
}

/** Keystroke echo: one character written, the same character read back, ECHOES times. */
async function floorEcho() {
  const child = spawn(py.exe, ['bench/pty_floor.py', py.exe, '-c', CAT], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'inherit'] });
  const times = [];
  let waiting = null;
  child.stdout.on('data', (chunk) => waiting?.(chunk));
  await new Promise((r) => setTimeout(r, 300)); // the pty and cat are up (the floor has no handshake)
  for (let i = 0; i < ECHOES; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    const t0 = performance.now();
    const seen = new Promise((resolve) => {
      let text = '';
      waiting = (chunk) => {
        text += chunk.toString();
        if (text.includes(ch)) resolve(); // the tty's own echo (canonical mode: cat sees the line later)
      };
    });
    child.stdin.write(ch);
    await seen;
    times.push((performance.now() - t0) * 1000);
  }
  child.kill();
  return summary(times);
}

async function bridgeEcho(client) {
  const { id } = await client.call('terminal.create', { command: py.exe, args: ['-c', CAT], rows: 24, cols: 80 });
  const stream = client.stream('terminal.attach', { id }, { window: 1 << 20 });
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // the restore
  const times = [];
  for (let i = 0; i < ECHOES; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    const t0 = performance.now();
    client.call('terminal.write', { id, data: ch });
    let text = '';
    while (!text.includes(ch)) {
      const { value } = await it.next();
      for (const item of value) text += item.data ?? '';
    }
    times.push((performance.now() - t0) * 1000);
  }
  await client.call('terminal.kill', { id });
  return summary(times);
}

/** Host memory per idle terminal: RSS before and after IDLE programs wait on their pty. */
async function idleMemory(client) {
  const pid = client.process.pid;
  const before = rss(pid);
  const ids = [];
  for (let i = 0; i < IDLE; i++) ids.push((await client.call('terminal.create', { command: py.exe, args: ['-c', CAT] })).id);
  const listed = await client.call('terminal.list', { ids });
  if (listed.length !== IDLE || listed.some((t) => t.state !== 'running')) throw new Error('idle terminals did not all start');
  const after = rss(pid);
  await client.call('terminal.batch', { operations: ids.map((id) => ({ op: 'kill', id })) });
  return { kib: ((after - before) * 1024) / IDLE, before, after };
}

/** MANY programs printing MANY_MB each at once: all attached, every byte counted. */
async function manyBridge(client) {
  const { code, bytes } = printing(MANY_MB);
  const start = performance.now();
  const ids = [];
  for (let i = 0; i < MANY; i++) ids.push((await client.call('terminal.create', { command: py.exe, args: ['-c', code], paused: true })).id);
  const counts = await Promise.all(ids.map((id) => readAll(client, id, 16)));
  const ms = performance.now() - start;
  if (counts.some((n) => n !== bytes)) throw new Error(`many: byte counts ${counts.filter((n) => n !== bytes).slice(0, 3)} != ${bytes}`);
  return { mbps: (bytes * MANY) / 1e6 / (ms / 1000), ms };
}

async function manyFloor() {
  const { code, bytes } = printing(MANY_MB);
  const start = performance.now();
  const counts = await Promise.all(Array.from({ length: MANY }, () => new Promise((resolve, reject) => {
    const child = spawn(py.exe, ['bench/pty_floor.py', py.exe, '-c', code], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'inherit'] });
    let got = 0;
    child.stdout.on('data', (chunk) => (got += chunk.length));
    child.on('error', reject);
    child.on('exit', () => resolve(got));
  })));
  const ms = performance.now() - start;
  if (counts.some((n) => n !== bytes)) throw new Error(`many floor: byte counts != ${bytes}`);
  return { mbps: (bytes * MANY) / 1e6 / (ms / 1000), ms };
}

/** A reader that takes the restore and one chunk, then grants nothing while the program has
 * STALL_MB to print: the host's RSS must stay flat and the program's output must stop. */
async function stalled(client) {
  const pid = client.process.pid;
  const idle = rss(pid);
  const { code } = printing(STALL_MB);
  const { id } = await client.call('terminal.create', { command: py.exe, args: ['-c', code] });
  const stream = client.stream('terminal.attach', { id }, { window: 1 });
  await stream.nextHeld(); // the restore, held: no credit goes back
  const samples = [];
  let last = -1;
  let out = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    samples.push(rss(pid));
    [{ bytes_out: out }] = await client.call('terminal.list', { ids: [id] });
    if (out === last) break; // the program is blocked on its writes
    last = out;
    if (samples.length > 40) throw new Error('the stalled terminal kept printing');
  }
  const peak = Math.max(...samples);
  await client.call('terminal.kill', { id });
  await stream.return(undefined);
  return { idle, peak, above: peak - idle, blockedAt: out };
}

const client = await spawnSidecar({ command: py.exe, args: ['-m', 'bridge', 'serve', 'bench.terminal_app:app', '--no-audit'], cwd: REPO, env, onStderr: null });
const runs = { floor: [], bridge: [] };
console.error("[bench] output rounds");
for (let r = 0; r < ROUNDS; r++) {
  runs.floor.push(await floorOutput());
  runs.bridge.push(await bridgeOutput(client));
}
for (const [name, xs] of Object.entries(runs)) {
  for (const x of xs) if (x.bytes !== expected) throw new Error(`${name}: ${x.bytes} bytes, expected ${expected}`);
}
const mbps = (xs) => summary(xs.map((x) => x.bytes / 1e6 / (x.ms / 1000)));
console.error("[bench] echo");
const echo = { floor: await floorEcho(), bridge: await bridgeEcho(client) };
console.error('[bench] idle terminals');
const idle = await idleMemory(client);
console.error('[bench] many at once');
const many = { floor: await manyFloor(), bridge: await manyBridge(client) };
console.error('[bench] stalled reader');
const stall = await stalled(client);
const peak = hwm(client.process.pid);
await client.close();
const f = mbps(runs.floor);
const b = mbps(runs.bridge);
console.log(`### terminal: ${MB} MB of output x ${ROUNDS} rounds, ${ECHOES} echoes; Node ${process.version}, Python ${py.version}\n`);
console.log(table(['path', 'output MB/s (p50, min-max)', 'echo p50 us', 'echo p99 us'], [
  ['floor (pty_floor.py)', `${round(f.p50, 1)} (${round(f.min, 1)}-${round(f.max, 1)})`, round(echo.floor.p50, 0), round(echo.floor.p99, 0)],
  ['bridge terminal.attach', `${round(b.p50, 1)} (${round(b.min, 1)}-${round(b.max, 1)})`, round(echo.bridge.p50, 0), round(echo.bridge.p99, 0)],
]));
console.log(`\noutput: ${round(b.p50 / f.p50, 2)}x the floor (target >= 0.8x); echo p50 ${round(echo.bridge.p50 / echo.floor.p50, 2)}x (target <= 1.5x); host peak RSS ${round(peak, 1)} MiB`);
console.log(`idle terminals: ${round(idle.kib, 1)} KiB of host RSS each (${IDLE} programs waiting: ${round(idle.before, 1)} -> ${round(idle.after, 1)} MiB)`);
console.log(`${MANY} terminals at once, ${MANY_MB} MB each: ${round(many.bridge.mbps, 1)} MB/s in all against ${round(many.floor.mbps, 1)} for ${MANY} floors (${round(many.bridge.mbps / many.floor.mbps, 2)}x)`);
console.log(`stalled reader facing ${STALL_MB} MB: host RSS ${round(stall.idle, 1)} -> ${round(stall.peak, 1)} MiB (+${round(stall.above, 2)}, target < 5), the program blocked after ${stall.blockedAt} bytes`);
