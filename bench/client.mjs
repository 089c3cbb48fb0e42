#!/usr/bin/env node
// Benchmark: the JavaScript client (client_js: spawnSidecar + client.call) against the bare
// hand-written NDJSON driver of run.mjs, both driving bridge's echo over stdio in one run.
// Usage: node bench/client.mjs [--quick] [--window N] [--json out.json] [--keep-env] [--verbose]
// Informational: prints PASS/MISS beside the target (client >= 0.8x the bare driver); exits 0
// unless the driver breaks.
//
// Two bridge processes (the same command) stay up side by side; each round times the bare
// driver on one, then the client on the other, so background noise lands on both alike.

import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { spawnSidecar } from '../client_js/src/node.js';
import { SMALL, encodeRing, pipelinedBlock } from './calls.mjs';
import { REPO, childEnv, machineInfo, resolvePython } from './env.mjs';
import { FRAMERS } from './framing.mjs';
import { round, summary, table } from './report.mjs';
import { Server } from './server.mjs';

const TARGET = 0.8;
const PROFILES = {
  full: { rounds: 5, warm: 2000, n: 20000 },
  quick: { rounds: 2, warm: 500, n: 3000 },
};

function parseArgs(argv) {
  const opts = { quick: false, window: 128, json: null, keepEnv: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--window') opts.window = Math.max(1, parseInt(argv[++i], 10) || 1);
    else if (a === '--json') opts.json = argv[++i];
    else if (a === '--keep-env') opts.keepEnv = true;
    else if (a === '--verbose') opts.verbose = true;
    else {
      console.error(`unknown option ${a}`);
      process.exit(2);
    }
  }
  return opts;
}

/** n calls through client.call() with up to `window` outstanding: each reply sends the next. */
function clientPipelined(client, n, window) {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    let bad = 0;
    const t0 = performance.now();
    const one = () => {
      sent++;
      client.call('echo', { value: SMALL }).then((value) => {
        if (value !== SMALL) bad++;
        if (++done === n) resolve({ elapsedMs: performance.now() - t0, bad });
        else if (sent < n) one();
      }, reject);
    };
    for (let i = 0; i < Math.min(window, n); i++) one();
  });
}

function cpuPerCall({ user, system }, n) {
  return round((user + system) / n, 2);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const profile = PROFILES[opts.quick ? 'quick' : 'full'];
  const py = resolvePython();
  const env = childEnv(opts);
  const args = ['-m', 'bridge', 'serve', 'bench.echo_app:app', '--framing', 'ndjson'];

  const bare = new Server({ id: 'bridge/ndjson', framing: 'ndjson', ready: true, argv: [py.exe, ...args], env, cwd: REPO }, opts).start();
  await bare.waitReady(30000);
  bare.fullParse = true;
  const client = await spawnSidecar({
    command: py.exe,
    args,
    cwd: REPO,
    env,
    onStderr: opts.verbose ? (line) => process.stderr.write(`[client stderr] ${line}\n`) : null,
    readyTimeout: 30000,
  });

  let nextBase = 1;
  const ring = () => {
    const r = encodeRing(FRAMERS.ndjson, nextBase, opts.window * 16);
    nextBase += opts.window * 16;
    return r;
  };
  const bareRing = ring();
  const results = { bare: [], client: [], bareCpuUs: [], clientCpuUs: [] };
  try {
    await pipelinedBlock(bare, bareRing, profile.warm, opts.window);
    await clientPipelined(client, profile.warm, opts.window);
    for (let r = 0; r < profile.rounds; r++) {
      let cpu = process.cpuUsage();
      const b = await pipelinedBlock(bare, bareRing, profile.n, opts.window);
      results.bareCpuUs.push(cpuPerCall(process.cpuUsage(cpu), profile.n));
      cpu = process.cpuUsage();
      const c = await clientPipelined(client, profile.n, opts.window);
      results.clientCpuUs.push(cpuPerCall(process.cpuUsage(cpu), profile.n));
      if (b.bad || c.bad) throw new Error(`bad replies: bare ${b.bad}, client ${c.bad}`);
      results.bare.push((profile.n / b.elapsedMs) * 1000);
      results.client.push((profile.n / c.elapsedMs) * 1000);
    }
  } finally {
    await bare.close();
    await client.close();
  }

  const bareS = summary(results.bare);
  const clientS = summary(results.client);
  const ratios = results.client.map((c, i) => c / results.bare[i]);
  const ratio = summary(ratios).p50;
  const verdict = ratio >= TARGET ? 'PASS' : 'MISS';
  console.log(`Pipelined echo calls/s against bridge (NDJSON, window ${opts.window}, ${profile.rounds} rounds of ${profile.n}); medians:`);
  console.log(
    table(
      ['driver', 'calls/s p50', 'min', 'max', 'driver CPU µs/call'],
      [
        ['bare NDJSON loop (run.mjs)', Math.round(bareS.p50), Math.round(bareS.min), Math.round(bareS.max), summary(results.bareCpuUs).p50],
        ['client_js client.call', Math.round(clientS.p50), Math.round(clientS.min), Math.round(clientS.max), summary(results.clientCpuUs).p50],
      ],
    ),
  );
  console.log(`client / bare: ${round(ratio, 2)}x (median of per-round ratios; target >= ${TARGET}x) ${verdict}`);
  if (opts.json) {
    const out = { machine: machineInfo(py), window: opts.window, rounds: profile.rounds, n: profile.n, ...results, ratios, ratio };
    writeFileSync(opts.json, JSON.stringify(out, null, 2));
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
