#!/usr/bin/env node
// Benchmark: drive JSON-RPC echo servers from Node over real stdio pipes and compare each
// with a minimal Python echo loop (the floor) speaking the same framing.
// Usage: node bench/run.mjs [--quick] [--json out.json] [--only floor,json,json-each,asyncio,bridge,pylsp,pygls,cat]
//        [--framing ndjson,lsp] [--window N] [--no-pygls] [--keep-env] [--verbose] [--against DIR]
//        (--against DIR: also serve the bridge of another checkout, e.g. a `git worktree` of an
//        older commit, side by side with this one: before and after in the same run; repeatable,
//        e.g. `--against /tmp/old --against .build/compiled`)
// Informational: PASS/MISS are printed beside the targets; exit code 0 unless the driver breaks.
//
// All servers stay up side by side and every phase runs in rounds, one server after the
// other, so background noise on a small machine lands on all of them alike.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { SMALL, clockTicks, encodeRing, latencyBlock, pipelinedBlock, replyValue, split } from './calls.mjs';
import { REPO, checkout, childEnv, idlestCpu, machineInfo, pinToCpu, resolvePython } from './env.mjs';
import { FRAMERS } from './framing.mjs';
import { computeJsonRatios, computeRatios, report, round, summary } from './report.mjs';
import { Server, withTimeout } from './server.mjs';

const MiB = 1 << 20;

const PROFILES = {
  full: {
    spawns: 10, rounds: 5,
    latWarm: 200, latN: 2000,
    pipeWarm: 2000, pipeN: 20000, pipeSeconds: 1.5,
    bigWarm: 3, bigN: 100,
    notifyN: 100000,
  },
  quick: {
    spawns: 3, rounds: 2,
    latWarm: 50, latN: 300,
    pipeWarm: 500, pipeN: 3000, pipeSeconds: 0.3,
    bigWarm: 1, bigN: 10,
    notifyN: 10000,
  },
};

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    quick: false, json: null, only: null, framings: ['ndjson', 'lsp'], window: 128,
    pygls: true, keepEnv: false, verbose: false, pin: true, against: [],
  };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = next();
    else if (a === '--only') opts.only = list(next());
    else if (a === '--framing') opts.framings = list(next());
    else if (a === '--window') opts.window = Math.max(1, parseInt(next(), 10) || 1);
    else if (a === '--no-pygls') opts.pygls = false;
    else if (a === '--keep-env') opts.keepEnv = true;
    else if (a === '--no-pin') opts.pin = false;
    else if (a === '--against') opts.against.push(checkout(next(), die));
    else if (a === '--verbose' || a === '-v') opts.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 9).join('\n'));
      process.exit(0);
    } else die(`unknown option ${a} (try --help)`);
  }
  for (const f of opts.framings) if (!FRAMERS[f]) die(`unknown framing ${f}`);
  return opts;
}

function die(msg) {
  console.error(`run.mjs: ${msg}`);
  process.exit(2);
}

const log = (...a) => console.error('[bench]', ...a);

// ---------------------------------------------------------------- environment

/** A python with pygls installed, in its own venv (made on first use), or why not. */
function pyglsPython(py, opts) {
  const dir = process.env.BENCH_PYGLS_VENV || path.join(os.tmpdir(), 'bridge-bench-pygls');
  const exe = path.join(dir, 'bin', 'python');
  const version = () => {
    try {
      return execFileSync(exe, ['-c', 'import pygls, importlib.metadata as m; print(m.version("pygls"))'],
        { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return null;
    }
  };
  let v = existsSync(exe) ? version() : null;
  if (!v) {
    log(`pygls: creating ${dir} (python -m venv, pip install pygls)`);
    const stdio = opts.verbose ? 'inherit' : 'ignore';
    try {
      execFileSync(py.exe, ['-m', 'venv', dir], { stdio, timeout: 120000 });
      execFileSync(exe, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'pygls'], { stdio, timeout: 300000 });
    } catch (err) {
      return { skip: `could not install pygls into ${dir}: ${String(err.message).split('\n')[0]}` };
    }
    v = version();
    if (!v) return { skip: `pygls does not import from ${dir}` };
  }
  return { exe, version: v };
}

function serverSpecs(opts, py, env) {
  const want = (name) => !opts.only || opts.only.includes(name);
  const specs = [];
  const skipped = [];
  const base = { cwd: REPO, env };
  for (const framing of opts.framings) {
    if (want('floor')) {
      specs.push({ ...base, id: `floor/${framing}`, name: 'floor', framing, ready: true, argv: [py.exe, 'bench/floor.py', '--framing', framing] });
    }
    if (want('json')) {
      specs.push({ ...base, id: `json-floor/${framing}`, name: 'json-floor', framing, ready: true, argv: [py.exe, 'bench/floor_json.py', '--framing', framing] });
    }
    if (want('json-each')) {
      specs.push({ ...base, id: `json-floor-each/${framing}`, name: 'json-floor-each', framing, ready: true, argv: [py.exe, 'bench/floor_json.py', '--framing', framing, '--each'] });
    }
    if (want('asyncio')) {
      specs.push({ ...base, id: `asyncio-floor/${framing}`, name: 'asyncio-floor', framing, ready: true, argv: [py.exe, 'bench/floor_asyncio.py', '--framing', framing] });
    }
    if (want('bridge')) {
      specs.push({ ...base, id: `bridge/${framing}`, name: 'bridge', framing, ready: true, argv: [py.exe, '-m', 'bridge', 'serve', 'bench.echo_app:app', '--framing', framing] });
    }
    for (const against of want('bridge') ? opts.against : []) {
      const name = `bridge@${against.label}`;
      specs.push({ ...base, cwd: against.dir, id: `${name}/${framing}`, name, framing, ready: true, argv: [py.exe, '-m', 'bridge', 'serve', 'bench.echo_app:app', '--framing', framing] });
    }
    if (want('bridge-asyncio')) {
      specs.push({ ...base, env: { ...env, BRIDGE_LOOP: 'asyncio' }, id: `bridge-asyncio/${framing}`, name: 'bridge-asyncio', framing, ready: true, argv: [py.exe, '-m', 'bridge', 'serve', 'bench.echo_app:app', '--framing', framing] });
    }
  }
  if (opts.framings.includes('lsp')) {
    if (want('pylsp')) {
      specs.push({ ...base, id: 'pylsp-jsonrpc/lsp', name: 'pylsp-jsonrpc', framing: 'lsp', ready: false, argv: [py.exe, 'bench/peer_pylsp.py'] });
    }
    if (want('pygls')) {
      const g = opts.pygls ? pyglsPython(py, opts) : { skip: '--no-pygls' };
      if (g.skip) skipped.push({ id: 'pygls/lsp', reason: g.skip });
      else specs.push({ ...base, id: 'pygls/lsp', name: 'pygls', version: g.version, framing: 'lsp', ready: false, argv: [g.exe, 'bench/peer_pygls.py'] });
    }
  }
  // Opt-in: cat sends every request straight back, which shows the driver's own ceiling.
  if (opts.only?.includes('cat')) {
    for (const framing of opts.framings) specs.push({ ...base, id: `cat/${framing}`, name: 'cat', framing, ready: false, argv: ['cat'] });
  }
  return { specs, skipped };
}

// ---------------------------------------------------------------- measurements

/** One spawn: send a call at once; time $/ready (if the server sends one) and the reply. */
async function startupOnce(spec, opts) {
  const s = new Server(spec, opts).start();
  try {
    const readyP = spec.ready ? s.waitReady(30000) : null;
    readyP?.catch(() => {}); // awaited below; a failed call must not leave it unhandled
    const [msg] = await s.call(1, SMALL, 30000);
    const firstMs = performance.now() - s.t0;
    if (replyValue(msg) !== SMALL) throw new Error(`bad first reply ${JSON.stringify(msg).slice(0, 200)}`);
    const readyMs = readyP ? (await readyP) - s.t0 : null;
    return { readyMs, firstMs, readyParams: s.readyParams };
  } catch (err) {
    if (s.stderrTail) err.stderrTail = s.stderrTail;
    throw err;
  } finally {
    await s.close(5000).catch(() => s.kill());
  }
}

/** Wall time from spawn to exit of a short command. */
function timeCommand(argv, env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(argv[0], argv.slice(1), { cwd: REPO, env, stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')} exited with ${code}`))));
  });
}

function makePayload(size) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,-_';
  const buf = Buffer.allocUnsafe(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; // xorshift: fixed text that needs no escaping
    buf[i] = alphabet.charCodeAt((x >>> 0) % alphabet.length);
  }
  return buf;
}

/** Sequential 1 MiB echoes; `check` parses each reply in full and compares the value. */
async function largeBlock(s, payload, text, n, check, nextId) {
  const times = [];
  s.fullParse = check;
  try {
    for (let i = 0; i < n; i++) {
      const id = nextId();
      const [msg, ms] = await s.roundTrip(id, () => s.writeLarge(id, payload), 60000);
      if (check) {
        if (replyValue(msg) !== text) throw new Error('1 MiB echo came back different');
      } else if (!(msg.$size >= payload.length)) {
        replyValue(msg);
        throw new Error(`1 MiB echo came back short (${msg.$size} bytes)`);
      }
      times.push(ms);
    }
  } finally {
    s.fullParse = true;
  }
  return times;
}

// ---------------------------------------------------------------- orchestration

/**
 * Runs fn for every server still standing, one after the other; a throw marks that
 * server failed (with the phase and its stderr) and drops it from later phases.
 */
async function eachServer(entries, phase, fn) {
  for (const e of entries) {
    if (!e.res.ok) continue;
    try {
      await fn(e);
    } catch (err) {
      e.res.ok = false;
      e.res.failedIn = phase;
      e.res.error = String(err?.message ?? err);
      const tail = err?.stderrTail ?? e.server?.stderrTail;
      if (tail) e.res.stderrTail = tail.slice(-1500);
      log(`${e.spec.id}: FAILED in ${phase}: ${e.res.error}`);
      if (tail) log(`${e.spec.id} stderr:\n${tail.slice(-1500)}`);
      if (tail?.includes("No module named 'pylsp_jsonrpc'")) {
        log(`${e.spec.id}: the peer is not installed: .venv/bin/python -m pip install -e '.[bench]'`);
      }
      e.server?.kill();
    }
  }
}

async function runAll(specs, opts, cfg, env, py) {
  const entries = specs.map((spec) => ({
    spec,
    res: { id: spec.id, name: spec.name, version: spec.version ?? null, framing: spec.framing, argv: spec.argv, ok: true },
    startup: { ready: [], first: [] },
  }));
  const reference = { bare: [], import: [] };
  let id = 1000;
  const nextId = () => ++id;

  // Start-up: round 0 is an unmeasured warm-up (page cache, __pycache__).
  log(`start-up: ${cfg.spawns} spawns each (+1 warm-up), with python -c pass / import pydantic, anyio`);
  for (let r = 0; r <= cfg.spawns; r++) {
    try {
      const bare = await timeCommand([py.exe, '-c', 'pass'], env);
      const imp = await timeCommand([py.exe, '-c', 'import pydantic, anyio'], env);
      if (r > 0) {
        reference.bare.push(bare);
        reference.import.push(imp);
      }
    } catch (err) {
      reference.error = String(err.message);
    }
    await eachServer(entries, 'start-up', async (e) => {
      const one = await startupOnce(e.spec, opts);
      if (r === 0) return;
      e.startup.first.push(one.firstMs);
      if (one.readyMs !== null) e.startup.ready.push(one.readyMs);
      e.res.readyParams = one.readyParams;
    });
  }
  for (const e of entries) {
    e.res.startup = { readyMs: summary(e.startup.ready), firstReplyMs: summary(e.startup.first) };
  }

  await eachServer(entries, 'spawn', async (e) => {
    e.server = new Server(e.spec, opts).start();
    if (e.spec.ready) await e.server.waitReady(30000);
    const [msg] = await e.server.call(nextId(), SMALL);
    replyValue(msg);
  });

  log(`pipelined: window ${opts.window}, >= ${cfg.pipeN} calls and ~${cfg.pipeSeconds} s each, in ${cfg.rounds} rounds`);
  await eachServer(entries, 'pipelined', async (e) => {
    e.ring = encodeRing(e.server.frame, 100000, Math.max(4096, opts.window * 16));
    const w = await withTimeout(pipelinedBlock(e.server, e.ring, cfg.pipeWarm, opts.window), 120000, 'pipelined warm-up');
    const perRound = Math.ceil(Math.max(cfg.pipeN, ((cfg.pipeWarm * 1000) / w.elapsedMs) * cfg.pipeSeconds) / cfg.rounds);
    e.pipe = { perRound: Math.min(perRound, 1000000), calls: 0, ms: 0, serverTicks: 0, driverUs: 0, rates: [] };
  });
  for (let r = 0; r < cfg.rounds; r++) {
    await eachServer(entries, 'pipelined', async (e) => {
      const p = e.pipe;
      const cpu0 = e.server.cpuTicks();
      const self0 = process.cpuUsage();
      const b = await withTimeout(pipelinedBlock(e.server, e.ring, p.perRound, opts.window), 300000, 'pipelined run');
      const self = process.cpuUsage(self0);
      const cpu1 = e.server.cpuTicks();
      if (b.bad) throw new Error(`${b.bad} pipelined replies were errors or wrong`);
      p.calls += p.perRound;
      p.ms += b.elapsedMs;
      p.serverTicks = cpu0 === null || cpu1 === null || p.serverTicks === null ? null : p.serverTicks + (cpu1 - cpu0);
      p.driverUs += self.user + self.system;
      p.rates.push(round((p.perRound * 1000) / b.elapsedMs, 0));
    });
  }
  for (const e of entries) {
    if (!e.res.ok) continue;
    const p = e.pipe;
    e.res.pipelined = {
      calls: p.calls,
      window: opts.window,
      elapsedMs: round(p.ms, 1),
      callsPerSec: round((p.calls * 1000) / p.ms, 0),
      roundCallsPerSec: p.rates,
      serverCpuUsPerCall: p.serverTicks === null ? null : round(((p.serverTicks / clockTicks()) * 1e6) / p.calls, 1),
      driverCpuPct: round((p.driverUs / 1000 / p.ms) * 100, 0),
    };
  }

  // Notifications (no reply): blocks of 4,000 then one call, whose reply says the block was
  // read. Only servers that parse (a byte echo would answer each); bridge must have counted
  // every one (rpc.metrics), so none was refused as busy.
  const NOTIFY_BLOCK = 4000;
  const notifying = entries.filter((e) => e.spec.name === 'json-floor' || e.spec.name.startsWith('bridge'));
  log(`notifications: ${cfg.notifyN} in blocks of ${NOTIFY_BLOCK}, each block then a call, in ${cfg.rounds} rounds`);
  for (const n of split(cfg.notifyN, cfg.rounds)) {
    await eachServer(notifying, 'notifications', async (e) => {
      const note = e.server.frame('{"jsonrpc":"2.0","method":"echo","params":{"value":"hello, bridge"}}');
      const block = Buffer.from(typeof note === 'string' ? note.repeat(NOTIFY_BLOCK) : Buffer.concat(Array(NOTIFY_BLOCK).fill(note)));
      const cpu0 = e.server.cpuTicks();
      const t0 = performance.now();
      for (let sent = 0; sent < n; sent += NOTIFY_BLOCK) {
        e.server.write(sent + NOTIFY_BLOCK <= n ? block : block.subarray(0, (block.length / NOTIFY_BLOCK) * (n - sent)));
        const [msg] = await e.server.call(nextId(), SMALL, 60000);
        replyValue(msg);
      }
      const ms = performance.now() - t0;
      const cpu1 = e.server.cpuTicks();
      e.notify = e.notify ?? { n: 0, ms: 0, ticks: 0 };
      e.notify.n += n;
      e.notify.ms += ms;
      e.notify.ticks = cpu0 === null || cpu1 === null || e.notify.ticks === null ? null : e.notify.ticks + (cpu1 - cpu0);
    });
  }
  await eachServer(notifying, 'notifications', async (e) => {
    if (!e.notify) return;
    if (e.spec.name.startsWith('bridge')) {
      const [msg] = await e.server.request(nextId(), 'rpc.metrics', undefined, 30000);
      const seen = msg.result?.totals?.notifications;
      if (seen !== e.notify.n) throw new Error(`${seen} notifications handled, ${e.notify.n} sent`);
    }
    e.res.notifications = {
      count: e.notify.n,
      perSec: round((e.notify.n * 1000) / e.notify.ms, 0),
      serverCpuUsPerNotification: e.notify.ticks === null ? null : round(((e.notify.ticks / clockTicks()) * 1e6) / e.notify.n, 2),
    };
  });

  log(`1 MiB: ${cfg.bigWarm} checked warm-up + ${cfg.bigN} sequential echoes each, in ${cfg.rounds} rounds`);
  const payload = makePayload(MiB);
  const text = payload.toString('latin1');
  await eachServer(entries, '1 MiB', async (e) => {
    await largeBlock(e.server, payload, text, cfg.bigWarm, true, nextId);
    e.big = [];
  });
  for (const n of split(cfg.bigN, cfg.rounds)) {
    await eachServer(entries, '1 MiB', async (e) => {
      e.big.push(...(await largeBlock(e.server, payload, text, n, false, nextId)));
    });
  }
  for (const e of entries) {
    if (!e.res.ok) continue;
    const total = e.big.reduce((a, b) => a + b, 0);
    e.res.large = {
      calls: e.big.length,
      bytes: payload.length,
      msgPerSec: round((e.big.length * 1000) / total, 1),
      mibPerSec: round(((payload.length / MiB) * e.big.length * 1000) / total, 1),
      ms: summary(e.big),
    };
  }

  // Last, pinned: on a 2-vCPU VM a round trip is ~20 us when driver and server share a CPU and
  // ~55 us when the other one must wake, and which happens changes from block to block. Every
  // server is measured the same way (see bench/README.md); --no-pin measures unpinned.
  let unpin = null;
  let latencyCpu;
  if (opts.pin) {
    latencyCpu = await idlestCpu();
    unpin = pinToCpu([process.pid, ...entries.filter((e) => e.res.ok).map((e) => e.server.child.pid)], latencyCpu);
    if (!unpin) latencyCpu = null;
  }
  log(latencyCpu === undefined ? 'latency: not pinned (--no-pin)' : latencyCpu === null
    ? 'latency: not pinned (taskset unavailable)' : `latency: driver and servers pinned to CPU ${latencyCpu}`);
  log(`latency: ${cfg.latWarm} warm-up + ${cfg.latN} sequential calls each, in ${cfg.rounds} rounds`);
  await eachServer(entries, 'latency', async (e) => {
    await latencyBlock(e.server, cfg.latWarm, nextId);
    e.lat = [];
  });
  for (const n of split(cfg.latN, cfg.rounds)) {
    await eachServer(entries, 'latency', async (e) => {
      e.lat.push(...(await latencyBlock(e.server, n, nextId)));
    });
  }
  for (const e of entries) if (e.res.ok) e.res.latencyUs = summary(e.lat);

  unpin?.();

  await eachServer(entries, 'close', async (e) => {
    e.res.memory = e.server.memory();
    e.res.close = await e.server.close(5000);
    if (e.server.notifications.length) e.res.otherNotifications = e.server.notifications;
  });
  for (const e of entries) e.server?.kill();

  return {
    results: entries.map((e) => e.res),
    reference: {
      pythonBare: summary(reference.bare),
      importPydanticAnyio: summary(reference.import),
      ...(reference.error ? { error: reference.error } : {}),
    },
  };
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const profile = opts.quick ? 'quick' : 'full';
  const cfg = PROFILES[profile];
  const py = resolvePython();
  const env = childEnv(opts);
  const { specs, skipped } = serverSpecs(opts, py, env);
  const machine = machineInfo(py);
  log(`python ${py.exe} (${py.version}); ${machine.cpus} cpus; ${profile} profile; ${specs.map((s) => s.id).join(', ')}`);

  const t0 = performance.now();
  const { results, reference } = await runAll(specs, opts, cfg, env, py);
  const out = {
    machine,
    profile,
    config: { ...cfg, window: opts.window, smallValue: SMALL, largeBytes: MiB, keepEnv: opts.keepEnv },
    reference,
    results,
    skipped,
    seconds: round((performance.now() - t0) / 1000, 1),
  };
  out.ratios = computeRatios(results, reference);
  out.jsonRatios = computeJsonRatios(results);
  const text = report(out);
  console.log(text);
  console.log(`\n(${out.seconds} s)`);
  if (opts.json) {
    writeFileSync(opts.json, `${JSON.stringify({ ...out, report: text }, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  }
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
