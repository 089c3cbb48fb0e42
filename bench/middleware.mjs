#!/usr/bin/env node
// Middleware benchmark: what bridge's middleware pipeline, cache and streams cost, driven
// from Node over real stdio pipes, each compared with a bare echo in the same run.
// Usage: node bench/middleware.mjs [--quick] [--json out.json] [--window N] [--stream-items N]
//        [--slow-chunks N] [--slow-ms MS] [--parse-all] [--no-pin] [--keep-env] [--verbose]
//        [--against DIR]   (the pipelined and latency rows again on another checkout's bridge)
// Informational: PASS/MISS are printed beside the targets; exit code 0 unless the driver breaks.
//
// Six bridge processes serve bench/middleware_app.py over NDJSON: `plain` (no app
// middleware: bare, per-option, full-chain and cached echoes), `piped` (an app middleware,
// so every method goes through the chain), and four more of `plain` for the streams, since
// peak memory is per process: a fast consumer, a slow one using credit, a slow one that
// just stops reading, and one left idle as the baseline.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { SMALL, clockTicks, encodeRing, latencyBlock, pipelinedBlock, replyValue, split } from './calls.mjs';
import { REPO, checkout, childEnv, idlestCpu, machineInfo, pinToCpu, resolvePython } from './env.mjs';
import { fx, num, round, summary, table } from './report.mjs';
import { Server, fmtExit, withTimeout } from './server.mjs';

const APP = 'bench.middleware_app';
const MB = 1e6;
const MiB = 1 << 20;

const PROFILES = {
  full: {
    rounds: 5,
    latWarm: 200, latN: 2000,
    pipeWarm: 2000, pipeN: 20000, pipeSeconds: 1.5,
    streamItems: 2_000_000, fastRounds: 3, slowChunks: 1000,
  },
  quick: {
    rounds: 2,
    latWarm: 50, latN: 300,
    pipeWarm: 500, pipeN: 3000, pipeSeconds: 0.3,
    streamItems: 200_000, fastRounds: 1, slowChunks: 100,
  },
};

/** Pipelined calls/s of the same echo handler with each piece of the pipeline, and all of it. */
const PIPELINE = [
  { key: 'bare', server: 'plain', method: 'echo', what: 'none (no chain)' },
  { key: 'validator', server: 'plain', method: 'echo_validator', what: 'validator=lambda kw: None' },
  { key: 'rate_limit', server: 'plain', method: 'echo_ratelimit', what: 'rate_limit=RateLimit(10**9, per=1)' },
  { key: 'circuit', server: 'plain', method: 'echo_circuit', what: 'circuit=CircuitBreaker()' },
  { key: 'app_mw', server: 'piped', method: 'echo_appmw', what: 'app middleware awaiting call_next' },
  { key: 'full', server: 'piped', method: 'echo', what: 'all four (the default pipeline)' },
  { key: 'chain', server: 'plain', method: 'echo_chain', what: 'all four, middleware per method' },
];

/**
 * Sequential round trips, all on `plain`: its methods alternate call by call, so the cache
 * hit, the full chain and the bare echo meet the same conditions (across processes, and
 * back to back rather than alternating, p50s differ by more than these costs). The driver
 * and the server are pinned to one CPU while they run (unless --no-pin): on a VM a round
 * trip between two vCPUs costs ~55 us against ~20 us on one, and which a block gets flips.
 */
const LATENCY = [
  { key: 'bare', server: 'plain', method: 'echo', what: 'echo, no chain' },
  { key: 'cached', server: 'plain', method: 'echo_cached', what: 'cache=Cache(ttl=3600), every call a hit' },
  { key: 'chain', server: 'plain', method: 'echo_chain', what: 'the full pipeline, middleware per method' },
];

const TARGETS = {
  pipeline: { min: 0.9, text: 'full pipeline >= 0.90x bare calls/s' },
  cache: { max: 1.1, text: 'cache hit p50 <= 1.1x echo p50' },
  slowGrowth: { max: 5, text: 'slow stream: peak RSS <= idle + 5 MiB' },
};

// The stream's items, as bench/middleware_app.py makes them: item i is ROWS[i % 1024].
const ROWS = Array.from({ length: 1024 }, (_, n) => String(n).padStart(4, '0') + 'abcdefghij'.repeat(9) + 'klmnop');
const CHUNK = 1000; // Stream(chunk_size=1000)
const ITEM_JSON = 102; // a row in JSON: 100 characters and two quotes

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    quick: false, json: null, window: 128, streamItems: null, slowChunks: null, slowMs: 2, slowWindow: 4,
    parseAll: false, pin: true, keepEnv: false, verbose: false, against: [],
  };
  const int = (v, a) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`${a} needs a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = next();
    else if (a === '--window') opts.window = int(next(), a);
    else if (a === '--stream-items') opts.streamItems = int(next(), a);
    else if (a === '--slow-chunks') opts.slowChunks = int(next(), a);
    else if (a === '--slow-ms') opts.slowMs = Number(next());
    else if (a === '--parse-all') opts.parseAll = true;
    else if (a === '--no-pin') opts.pin = false;
    else if (a === '--keep-env') opts.keepEnv = true;
    else if (a === '--against') opts.against.push(checkout(next(), die));
    else if (a === '--verbose' || a === '-v') opts.verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 6).join('\n'));
      process.exit(0);
    } else die(`unknown option ${a} (try --help)`);
  }
  if (!(opts.slowMs >= 0)) die('--slow-ms needs a number of milliseconds');
  return opts;
}

function die(msg) {
  console.error(`middleware.mjs: ${msg}`);
  process.exit(2);
}

const log = (...a) => console.error('[bench]', ...a);

// ---------------------------------------------------------------- streams

/**
 * Reads one stream of `count` rows as it arrives. Every chunk is checked from its first and
 * last bytes (id, seq in order, done, and the exact length its items must make), so 200 MB
 * are not JSON.parsed; every `sampleEvery`-th chunk (each with --parse-all) is parsed and
 * compared item by item. A slow consumer "processes" each chunk for `delayMs`: with
 * `window` it asks for credit pacing and grants one credit per chunk processed; without,
 * it stops reading stdout while it has chunks to process (the pipe then fills).
 */
function streamBlock(s, id, count, { window = null, delayMs = null, sampleEvery = 50, onChunk = null } = {}) {
  return new Promise((resolve, reject) => {
    const head = `{"jsonrpc":"2.0","method":"$/stream","params":{"id":${id},"seq":`;
    const st = { chunks: 0, items: 0, bytes: 0, parsed: 0, credits: 0, maxAhead: 0, bad: [], reply: null };
    const queue = [];
    let processing = false;
    let t0 = 0;
    const bad = (why) => {
      if (st.bad.length < 5) st.bad.push(why);
    };
    const finish = (err) => {
      delete s.onFrame; // back to Server.prototype.onFrame
      s.onReply = null;
      if (err) reject(err);
      else resolve({ ...st, elapsedMs: performance.now() - t0 });
    };
    const maybeDone = () => {
      if (st.reply && !processing && !queue.length) finish(null);
    };
    const work = async () => {
      processing = true;
      while (queue.length) {
        await sleep(delayMs);
        queue.shift();
        if (window === null) {
          if (!queue.length) s.child.stdout.resume();
        } else if (!st.reply) { // (once the stream is over, credit would go nowhere)
          st.credits++;
          s.write(s.frame(`{"jsonrpc":"2.0","method":"$/stream/credit","params":{"id":${id},"credit":1}}`));
        }
      }
      processing = false;
      maybeDone();
    };
    s.onFrame = (buf, start, end) => {
      if (end - start < head.length || buf.toString('latin1', start, start + head.length) !== head) {
        return Server.prototype.onFrame.call(s, buf, start, end);
      }
      st.bytes += end - start + 1; // and its newline
      const comma = buf.indexOf(44, start + head.length); // the comma after seq
      const seq = Number(buf.toString('latin1', start + head.length, comma));
      const m = /\],"done":(\d+)\}\}$/.exec(buf.toString('latin1', Math.max(start, end - 40), end));
      const done = m ? Number(m[1]) : NaN;
      const n = done - st.items;
      const want = comma - start + ',"items":['.length + n * (ITEM_JSON + 1) - 1 + `],"done":${done}}}`.length;
      if (seq !== st.chunks) bad(`chunk ${st.chunks} came with seq ${seq}`);
      if (!(n >= 1 && n <= CHUNK) || end - start !== want) bad(`chunk ${seq}: ${end - start} bytes, done ${done}`);
      if (seq % sampleEvery === 0) {
        st.parsed++;
        const items = JSON.parse(buf.toString('utf8', start, end)).params.items;
        if (items.length !== n || items.some((x, k) => x !== ROWS[(st.items + k) % ROWS.length])) bad(`chunk ${seq}: wrong items`);
      }
      st.chunks++;
      st.items = done;
      if (onChunk) onChunk(st);
      if (delayMs !== null) {
        if (window === null) s.child.stdout.pause();
        else st.maxAhead = Math.max(st.maxAhead, st.chunks - st.credits); // never more than window
        queue.push(seq);
        if (!processing) work();
      }
    };
    s.onReply = (msg) => {
      if (msg === null) return finish(new Error(`server exited (${fmtExit(s.exit)})`));
      if (msg.id !== id) return;
      st.reply = msg;
      maybeDone();
    };
    const params = window === null ? { count } : { count, $meta: { stream: { window } } };
    t0 = performance.now();
    s.write(s.frame(JSON.stringify({ jsonrpc: '2.0', id, method: 'rows', params })));
  });
}

/** What the host counted of its streams so far (rpc.metrics), to compare with the driver. */
async function streamCounts(s, nextId) {
  const [metrics] = await s.request(nextId(), 'rpc.metrics');
  return replyValue(metrics).methods?.rows?.stream ?? { chunks: 0, bytes: 0 };
}

/** Streams on one process, one after another, with the CPU both sides used and the server's memory. */
async function measureStreams(s, count, rounds, options, nextId) {
  const runs = [];
  for (let r = 0; r < rounds; r++) runs.push(await measureStream(s, nextId(), count, options, nextId));
  const sum = (k) => runs.reduce((a, x) => a + x[k], 0);
  const seconds = sum('seconds');
  const during = runs.map((x) => x.memory.rssDuringKiB).filter(Boolean);
  return {
    rounds,
    items: sum('items'),
    chunks: sum('chunks'),
    bytes: sum('bytes'),
    seconds: round(seconds, 3),
    mbPerSec: round(sum('bytes') / MB / seconds, 1),
    roundMbPerSec: runs.map((x) => round(x.bytes / MB / x.seconds, 1)),
    chunksPerSec: round(sum('chunks') / seconds, 1),
    itemsPerSec: round(sum('items') / seconds, 0),
    // (CPU time comes in clock ticks, 10 ms: a shorter run would give nonsense)
    serverCpuPct: runs.some((x) => x.serverCpuS === null) || seconds < 0.25 ? null : round((sum('serverCpuS') / seconds) * 100, 0),
    driverCpuPct: round((sum('driverCpuS') / seconds) * 100, 0),
    parsedChunks: sum('parsedChunks'),
    window: options.window ?? null,
    maxAhead: options.window ? Math.max(...runs.map((x) => x.maxAhead)) : null,
    credits: sum('credits'),
    memory: {
      before: runs[0].memory.before,
      after: runs[runs.length - 1].memory.after,
      rssDuringKiB: during.length ? { min: Math.min(...during.map((d) => d.min)), max: Math.max(...during.map((d) => d.max)) } : null,
    },
    metrics: { chunks: sum('metricsChunks'), bytes: sum('metricsBytes') },
    problems: runs.flatMap((x) => x.problems),
  };
}

/** One stream of `count` rows. */
async function measureStream(s, id, count, options, nextId) {
  const counts0 = await streamCounts(s, nextId);
  const before = s.memory();
  const rss = { min: Infinity, max: 0 };
  const sampleRss = () => {
    const kib = s.memory()?.rssKiB;
    if (kib) {
      rss.min = Math.min(rss.min, kib);
      rss.max = Math.max(rss.max, kib);
    }
  };
  const cpu0 = s.cpuTicks();
  const self0 = process.cpuUsage();
  const st = await withTimeout(streamBlock(s, id, count, {
    ...options,
    onChunk: (x) => x.chunks % 20 === 0 && sampleRss(),
  }), 300000, `stream ${id}`);
  const self = process.cpuUsage(self0);
  const cpu1 = s.cpuTicks();
  sampleRss();
  const after = s.memory();
  const result = replyValue(st.reply);
  const chunks = Math.ceil(count / CHUNK);
  if (result?.items !== count || result?.chunks !== chunks) st.bad.push(`reply ${JSON.stringify(result)}, expected ${count} items in ${chunks} chunks`);
  if (st.chunks !== chunks || st.items !== count) st.bad.push(`received ${st.items} items in ${st.chunks} chunks`);
  const counts1 = await streamCounts(s, nextId);
  const metricsBytes = counts1.bytes - counts0.bytes;
  if (metricsBytes !== st.bytes) st.bad.push(`rpc.metrics counts ${metricsBytes} stream bytes, the driver ${st.bytes}`);
  return {
    items: st.items,
    chunks: st.chunks,
    bytes: st.bytes,
    seconds: st.elapsedMs / 1000,
    serverCpuS: cpu0 === null || cpu1 === null ? null : (cpu1 - cpu0) / clockTicks(),
    driverCpuS: (self.user + self.system) / 1e6,
    parsedChunks: st.parsed,
    maxAhead: st.maxAhead,
    credits: st.credits,
    memory: { before, after, rssDuringKiB: rss.max ? { min: rss.min, max: rss.max } : null },
    metricsChunks: counts1.chunks - counts0.chunks,
    metricsBytes,
    problems: st.bad,
  };
}

// ---------------------------------------------------------------- run

async function run(opts, cfg, servers) {
  let id = 1000;
  const nextId = () => ++id;
  const out = { pipelined: {}, latency: {}, streams: {} };

  log(`pipelined: window ${opts.window}, >= ${cfg.pipeN} calls and ~${cfg.pipeSeconds} s each, ${PIPELINE.length} methods in ${cfg.rounds} rounds`);
  for (const v of PIPELINE) {
    const s = servers[v.server];
    v.ring = encodeRing(s.frame, 100000, Math.max(4096, opts.window * 16), v.method);
    const w = await withTimeout(pipelinedBlock(s, v.ring, cfg.pipeWarm, opts.window), 120000, `${v.method} warm-up`);
    if (w.bad) throw new Error(`${v.method}: ${w.bad} pipelined replies were errors or wrong`);
    const perRound = Math.ceil(Math.max(cfg.pipeN, ((cfg.pipeWarm * 1000) / w.elapsedMs) * cfg.pipeSeconds) / cfg.rounds);
    v.acc = { perRound, calls: 0, ms: 0, ticks: 0, driverUs: 0, rates: [] };
  }
  for (let r = 0; r < cfg.rounds; r++) {
    for (const v of PIPELINE) {
      const s = servers[v.server];
      const a = v.acc;
      const cpu0 = s.cpuTicks();
      const self0 = process.cpuUsage();
      const b = await withTimeout(pipelinedBlock(s, v.ring, a.perRound, opts.window), 300000, `${v.method} pipelined`);
      const self = process.cpuUsage(self0);
      const cpu1 = s.cpuTicks();
      if (b.bad) throw new Error(`${v.method}: ${b.bad} pipelined replies were errors or wrong`);
      a.calls += a.perRound;
      a.ms += b.elapsedMs;
      a.ticks = cpu0 === null || cpu1 === null || a.ticks === null ? null : a.ticks + (cpu1 - cpu0);
      a.driverUs += self.user + self.system;
      a.rates.push(round((a.perRound * 1000) / b.elapsedMs, 0));
    }
  }
  for (const v of PIPELINE) {
    const a = v.acc;
    out.pipelined[v.key] = {
      server: v.server,
      method: v.method,
      middleware: v.what,
      calls: a.calls,
      callsPerSec: round((a.calls * 1000) / a.ms, 0),
      roundCallsPerSec: a.rates,
      serverCpuUsPerCall: a.ticks === null ? null : round(((a.ticks / clockTicks()) * 1e6) / a.calls, 2),
      driverCpuPct: round((a.driverUs / 1000 / a.ms) * 100, 0),
    };
  }

  // Peak memory is per process, so each stream has its own, and an idle one is the baseline.
  out.streams.idle = { memory: servers.idle.memory() };
  const sampleEvery = opts.parseAll ? 1 : 50;
  log(`stream, fast consumer: ${cfg.fastRounds} x ${num(cfg.streamItems)} items of 100 bytes, ${CHUNK} a chunk, read as fast as they come (+1 small warm-up)`);
  await withTimeout(streamBlock(servers.fast, nextId(), 50 * CHUNK, { sampleEvery: 1 }), 60000, 'stream warm-up');
  out.streams.fast = await measureStreams(servers.fast, cfg.streamItems, cfg.fastRounds, { sampleEvery }, nextId);
  const slowItems = cfg.slowChunks * CHUNK;
  log(`stream, slow consumer: ${num(slowItems)} items, window ${opts.slowWindow}, ${opts.slowMs} ms per chunk, then 1 credit`);
  out.streams.slow = await measureStreams(servers.slow, slowItems, 1,
    { window: opts.slowWindow, delayMs: opts.slowMs, sampleEvery }, nextId);
  log(`stream, slow reader: ${num(slowItems)} items, no credit, stdout paused ${opts.slowMs} ms per chunk`);
  out.streams.pipe = await measureStreams(servers.pipe, slowItems, 1, { delayMs: opts.slowMs, sampleEvery }, nextId);

  // Last: pinning leaves the driver on one CPU for a while after it is undone.
  log(`latency: ${cfg.latWarm} warm-up + ${cfg.latN} sequential calls each, ${LATENCY.length} methods in ${cfg.rounds} rounds`);
  const byServer = {};
  for (const v of LATENCY) (byServer[v.server] ??= []).push(v);
  let unpin = null;
  if (opts.pin) {
    out.latencyCpu = await idlestCpu();
    unpin = pinToCpu([process.pid, ...Object.keys(byServer).map((k) => servers[k].child.pid)], out.latencyCpu);
    if (!unpin) out.latencyCpu = null;
  }
  try {
    for (const v of LATENCY) {
      await latencyBlock(servers[v.server], cfg.latWarm, nextId, v.method); // the cache's one miss is here
      v.times = [];
    }
    for (const n of split(cfg.latN, cfg.rounds)) {
      for (const [server, group] of Object.entries(byServer)) {
        for (let i = 0; i < n; i++) {
          for (const v of group) v.times.push(...(await latencyBlock(servers[server], 1, nextId, v.method)));
        }
      }
    }
  } finally {
    unpin?.();
  }
  for (const v of LATENCY) out.latency[v.key] = { server: v.server, method: v.method, what: v.what, us: summary(v.times) };
  const [m] = await servers.plain.request(nextId(), 'rpc.metrics');
  out.latency.cached.cache = replyValue(m).methods?.echo_cached?.cache ?? null;
  return out;
}

/**
 * --against DIR: the other checkout's `plain` and `piped` servers, and every pipelined and
 * latency row again on them (`<key>@<label>`), measured in the same rounds as this one's.
 */
function againstToo(servers, againsts, make) {
  const pipeline = [...PIPELINE];
  const latency = [...LATENCY];
  for (const against of againsts) {
    const at = (x) => `${x}@${against.label}`;
    for (const name of ['plain', 'piped']) servers[at(name)] = make(at(name), name, against.dir);
    PIPELINE.push(...pipeline.map((v) => ({ ...v, key: at(v.key), server: at(v.server) })));
    LATENCY.push(...latency.map((v) => ({ ...v, key: at(v.key), server: at(v.server) })));
  }
}

function verdict(x, t) {
  if (x === null || x === undefined) return 'n/a';
  if (t.min !== undefined) return x >= t.min ? 'PASS' : 'MISS';
  return x <= t.max ? 'PASS' : 'MISS';
}

/** The bare echo row a row compares with: its own checkout's (`bare`, or `bare@<label>`). */
const bareOf = (rows, key) => rows[key.includes('@') ? `bare@${key.split('@')[1]}` : 'bare'];

function computeRatios(out) {
  const p = out.pipelined;
  const l = out.latency;
  const s = out.streams;
  const idle = s.idle.memory?.hwmKiB ?? null;
  const growth = (x) => (idle === null || !x.memory.after?.hwmKiB ? null : (x.memory.after.hwmKiB - idle) / 1024);
  const r = {
    pipeline: Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.callsPerSec / bareOf(p, k).callsPerSec])),
    latency: Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v.us.p50 / bareOf(l, k).us.p50])),
    growthMiB: { fast: growth(s.fast), slow: growth(s.slow), pipe: growth(s.pipe) },
  };
  r.verdicts = {
    pipeline: verdict(r.pipeline.full, TARGETS.pipeline),
    cache: verdict(r.latency.cached, TARGETS.cache),
    slowGrowth: verdict(r.growthMiB.slow, TARGETS.slowGrowth),
  };
  return r;
}

// ---------------------------------------------------------------- report

const mib = (kib) => (kib ? num(kib / 1024, 1) : '-');
const pct = (x) => (x === null || x === undefined ? '-' : `${num(x)}%`);
const fx3 = (x) => (x === null || x === undefined ? '-' : `${x.toFixed(3)}x`); // verdicts near the line

function report(out) {
  const { machine: m, results: res, ratios: r } = out;
  const quick = out.profile === 'quick' ? ' [--quick: small counts, noisy]' : '';
  const lines = [`### ${m.date.slice(0, 10)}: ${m.cpus} cores (${m.cpuModel}), Node ${m.node}, Python ${m.python}${quick}`, ''];

  lines.push(`Pipelined calls/s, window ${out.config.window}, the same \`echo(value)\` handler:`, '');
  lines.push(table(
    ['method (app)', 'middleware', 'calls/s', 'vs bare', 'server cpu us/call', 'driver cpu'],
    Object.entries(res.pipelined).map(([k, v]) => [
      `${v.method} (${v.server})`, v.middleware, num(v.callsPerSec), k.startsWith('bare') ? '1.00x' : fx(r.pipeline[k]),
      num(v.serverCpuUsPerCall, 1), pct(v.driverCpuPct),
    ]),
  ));

  const pinned = res.latencyCpu === undefined ? 'not pinned (--no-pin)' : res.latencyCpu === null ? 'not pinned: taskset unavailable' : `driver and server pinned to CPU ${res.latencyCpu}`;
  lines.push('', `Sequential round trips (us; ${pinned}; methods of one process alternate call by call):`, '');
  const hits = res.latency.cached.cache;
  lines.push(table(
    ['method (app)', 'what', 'p50', 'p99', 'p50 vs echo', 'p50 added'],
    Object.entries(res.latency).map(([k, v]) => [
      `${v.method} (${v.server})`, k === 'cached' && hits ? `${v.what} (hit rate ${hits.hitRate})` : v.what,
      num(v.us.p50, 1), num(v.us.p99, 1), k.startsWith('bare') ? '1.00x' : fx(r.latency[k]),
      k.startsWith('bare') ? '-' : `${v.us.p50 >= bareOf(res.latency, k).us.p50 ? '+' : ''}${num(v.us.p50 - bareOf(res.latency, k).us.p50, 1)}`,
    ]),
  ));

  const { idle, fast, slow, pipe } = res.streams;
  const streams = [
    ['fast', `fast: reads all, ${fast.rounds} streams`, fast],
    ['slow', `slow: credit, ${out.config.slowMs} ms/chunk`, slow],
    ['pipe', `slow: no credit, ${out.config.slowMs} ms/chunk`, pipe],
  ];
  lines.push('', `Streams of 100-byte strings, ${CHUNK} a chunk (~${num(CHUNK * (ITEM_JSON + 1) / 1024)} KiB); MB = 10^6 bytes of NDJSON; memory is VmHWM / VmRSS of the server:`, '');
  const during = (x) => (x.memory.rssDuringKiB ? `${mib(x.memory.rssDuringKiB.min)}-${mib(x.memory.rssDuringKiB.max)}` : '-');
  const ahead = (x) => (x.window ? `${x.maxAhead} (window ${x.window})` : '-');
  lines.push(table(
    ['consumer', 'chunks', 'MB', 's', 'MB/s', 'chunks/s', 'server cpu', 'driver cpu', 'most unacked chunks', 'peak RSS MiB', 'over idle MiB', 'RSS during MiB'],
    [
      ['idle process (baseline)', '-', '-', '-', '-', '-', '-', '-', '-', mib(idle.memory?.hwmKiB), '-', '-'],
      ...streams.map(([key, name, x]) => [
        name, num(x.chunks), num(x.bytes / MB, 1), num(x.seconds, 2), num(x.mbPerSec, 1), num(x.chunksPerSec, 0),
        pct(x.serverCpuPct), pct(x.driverCpuPct), ahead(x), mib(x.memory.after?.hwmKiB),
        r.growthMiB[key] === null ? '-' : num(r.growthMiB[key], 1), during(x),
      ]),
    ],
  ));

  lines.push('', table(
    ['target', 'measured', 'verdict'],
    [
      [TARGETS.pipeline.text, fx3(r.pipeline.full), r.verdicts.pipeline],
      [TARGETS.cache.text, fx3(r.latency.cached), r.verdicts.cache],
      [TARGETS.slowGrowth.text, r.growthMiB.slow === null ? '-' : `+${num(r.growthMiB.slow, 1)} MiB`, r.verdicts.slowGrowth],
      ['fast stream (no target)', `${num(fast.mbPerSec, 1)} MB/s (rounds ${fast.roundMbPerSec.join(', ')}), +${num(r.growthMiB.fast ?? 0, 1)} MiB`, '-'],
      ['slow reader without credit (no target)', `+${num(r.growthMiB.pipe ?? 0, 1)} MiB`, '-'],
    ],
  ));

  const notes = [];
  for (const [key, , x] of streams) {
    for (const p of x.problems) notes.push(`PROBLEM ${key} stream: ${p}`);
    notes.push(`${key}: ${x.parsedChunks} of ${x.chunks} chunks parsed and compared item by item; every chunk's id, seq, done and length checked; ` +
      `rpc.metrics counted ${num(x.metrics?.chunks)} chunks, ${num(x.metrics?.bytes)} bytes`);
  }
  if (slow.window && slow.maxAhead > slow.window) notes.push(`PROBLEM slow stream: ${slow.maxAhead} chunks arrived beyond the credit granted (window ${slow.window})`);
  for (const [name, c] of Object.entries(out.close ?? {})) {
    if (c?.forced) notes.push(`note ${name}: did not exit within 5 s of stdin EOF (sent ${c.forced})`);
    else if (c && c.code !== 0) notes.push(`note ${name}: exited with code ${c.code} on stdin EOF`);
  }
  lines.push('', ...notes);
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const profile = opts.quick ? 'quick' : 'full';
  const cfg = { ...PROFILES[profile] };
  if (opts.streamItems) cfg.streamItems = opts.streamItems;
  if (opts.slowChunks) cfg.slowChunks = opts.slowChunks;
  const py = resolvePython();
  const env = childEnv(opts);
  const machine = machineInfo(py);
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'bridge-bench-cache-'));
  const spec = (name, app, cwd = REPO) => ({
    id: name, name, framing: 'ndjson', ready: true, cwd,
    env: { ...env, BRIDGE_CACHE_DIR: cacheDir },
    argv: [py.exe, '-m', 'bridge', 'serve', `${APP}:${app}`, '--framing', 'ndjson'],
  });
  const servers = {
    plain: new Server(spec('plain', 'plain'), opts),
    piped: new Server(spec('piped', 'piped'), opts),
    fast: new Server(spec('stream-fast', 'plain'), opts),
    slow: new Server(spec('stream-slow', 'plain'), opts),
    pipe: new Server(spec('stream-pipe', 'plain'), opts),
    idle: new Server(spec('idle', 'plain'), opts),
  };
  againstToo(servers, opts.against, (name, app, dir) => new Server(spec(name, app, dir), opts));
  log(`python ${py.exe} (${py.version}); ${machine.cpus} cpus; ${profile} profile; cache in ${cacheDir}`);
  const t0 = performance.now();
  const close = {};
  try {
    let id = 0;
    for (const s of Object.values(servers)) {
      s.start();
      await s.waitReady(30000);
      const [msg] = await s.call(++id, SMALL); // imports, and the params model built
      if (replyValue(msg) !== SMALL) throw new Error(`${s.spec.id}: bad first reply`);
    }
    await sleep(300); // the warm-up thread that builds every params model has finished
    const results = await run(opts, cfg, servers);
    for (const [name, s] of Object.entries(servers)) close[name] = await s.close(5000);
    const out = {
      machine,
      profile,
      config: { ...cfg, window: opts.window, slowWindow: opts.slowWindow, slowMs: opts.slowMs, chunkSize: CHUNK, parseAll: opts.parseAll },
      results,
      close,
      seconds: round((performance.now() - t0) / 1000, 1),
    };
    out.ratios = computeRatios(results);
    const text = report(out);
    console.log(text);
    console.log(`\n(${out.seconds} s)`);
    if (opts.json) {
      writeFileSync(opts.json, `${JSON.stringify({ ...out, report: text }, null, 2)}\n`);
      log(`wrote ${opts.json}`);
    }
  } catch (err) {
    for (const s of Object.values(servers)) {
      if (s.stderrTail) log(`${s.spec.id} stderr:\n${s.stderrTail.slice(-1500)}`);
    }
    throw err;
  } finally {
    for (const s of Object.values(servers)) s.kill();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err?.stack ?? String(err));
  process.exit(1);
});
