#!/usr/bin/env node
// Benchmark: start-up of the frozen sidecar (`bridge bundle`, onefile and onedir) against
// `python -m bridge serve` of the same app, in one run, and the bundles' sizes.
// Usage: node bench/startup.mjs [--app examples.app:app] [--spawns N] [--quick] [--rebuild]
//        [--json out.json] [--keep-env]
// Informational: PASS/MISS beside the target (bundle start-up < 1.5x the module's); exit 0.
//
// Spawns alternate between the three, one of each per round, after one unmeasured warm-up
// round (page cache, __pycache__). Each spawn writes a call at once and times, from spawn,
// the `$/ready` notification and the reply; then it ends stdin and expects exit code 0.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';

import { REPO, childEnv, machineInfo, resolvePython } from './env.mjs';
import { round, summary } from './report.mjs';

const TARGET = 1.5;
const MiB = 2 ** 20;

function parseArgs(argv) {
  const opts = { app: 'examples.app:app', spawns: 20, rebuild: false, json: null, keepEnv: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i] ?? die(`${a} needs a value`);
    if (a === '--app') opts.app = next();
    else if (a === '--spawns') opts.spawns = Math.max(1, parseInt(next(), 10) || 1);
    else if (a === '--quick') opts.spawns = 5;
    else if (a === '--rebuild') opts.rebuild = true;
    else if (a === '--json') opts.json = next();
    else if (a === '--keep-env') opts.keepEnv = true;
    else die(`unknown option ${a}`);
  }
  return opts;
}

function die(message) {
  console.error(`startup.mjs: ${message}`);
  process.exit(2);
}

const log = (...a) => console.error('[bench]', ...a);

/** `bridge bundle APP --MODE` into the cache (a fresh one with --rebuild); its JSON result. */
function bundle(py, opts, mode, cache) {
  const t0 = performance.now();
  const out = execFileSync(py.exe, ['-m', 'bridge', 'bundle', opts.app, `--${mode}`, '--no-plugins', '--cache', cache, '--json'], {
    cwd: REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 1_800_000,
  });
  return { ...JSON.parse(out), wallSeconds: (performance.now() - t0) / 1000 };
}

/** One spawn: spawn to `$/ready`, spawn to the first reply, and a clean exit on EOF. */
function startOnce(argv, env, cwd) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let buffer = '';
    let readyMs = null;
    let replyMs = null;
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-2000); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const message = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (message.method === '$/ready') readyMs = performance.now() - t0;
        else if (message.id === 1) {
          replyMs = performance.now() - t0;
          if (message.result !== 3) reject(new Error(`bad reply ${JSON.stringify(message)}`));
          child.stdin.end();
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0 || readyMs === null || replyMs === null) reject(new Error(`${argv[0]} exited ${code}; stderr: ${stderr}`));
      else resolve({ readyMs, replyMs });
    });
    child.stdin.write('{"jsonrpc":"2.0","id":1,"method":"math.add","params":[1,2]}\n');
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const py = resolvePython();
  const env = { ...childEnv(opts), BRIDGE_FRAMING: 'ndjson', BRIDGE_LOG_LEVEL: 'warning' };
  const cache = opts.rebuild
    ? mkdtempSync(path.join(os.tmpdir(), 'bridge-bench-bundle-'))
    : process.env.BENCH_BUNDLE_CACHE || path.join(os.homedir(), '.cache', 'bridge-bench-bundle');
  const started = performance.now();

  log(`building ${opts.app} (cache ${cache})`);
  const builds = { onefile: bundle(py, opts, 'onefile', cache), onedir: bundle(py, opts, 'onedir', cache) };
  // The bundles run from an empty directory: nothing of the checkout is importable there.
  const away = mkdtempSync(path.join(os.tmpdir(), 'bridge-bench-cwd-'));
  const { BRIDGE_PYTHON, PYTHONPATH, ...frozenEnv } = env;
  const subjects = [
    { id: 'module', argv: [py.exe, '-m', 'bridge', 'serve', opts.app], env, cwd: REPO },
    { id: 'onefile', argv: [builds.onefile.executable], env: frozenEnv, cwd: away },
    { id: 'onedir', argv: [builds.onedir.executable], env: frozenEnv, cwd: away },
  ];
  const times = Object.fromEntries(subjects.map((s) => [s.id, { ready: [], reply: [] }]));
  log(`start-up: ${opts.spawns} spawns each (+1 warm-up), interleaved`);
  for (let r = 0; r <= opts.spawns; r++) {
    for (const s of subjects) {
      const one = await startOnce(s.argv, s.env, s.cwd);
      if (r === 0) continue;
      times[s.id].ready.push(one.readyMs);
      times[s.id].reply.push(one.replyMs);
    }
  }
  rmSync(away, { recursive: true, force: true });
  if (opts.rebuild) rmSync(cache, { recursive: true, force: true });

  const results = subjects.map((s) => ({
    id: s.id,
    readyMs: summary(times[s.id].ready),
    firstReplyMs: summary(times[s.id].reply),
    bytes: builds[s.id]?.bytes ?? null,
    buildSeconds: builds[s.id] ? (builds[s.id].cached ? null : round(builds[s.id].seconds, 1)) : null,
  }));
  const base = results[0];
  for (const r of results) {
    r.readyRatio = round(r.readyMs.p50 / base.readyMs.p50, 2);
    r.firstReplyRatio = round(r.firstReplyMs.p50 / base.firstReplyMs.p50, 2);
  }

  const machine = machineInfo(py);
  console.log(`\nstart-up of ${opts.app}, ${opts.spawns} spawns each: ${machine.cpus} cpus, ${machine.platform}, Python ${py.version}, Node ${machine.node}\n`);
  console.log('| how it runs | $/ready p50 ms | p99 ms | first reply p50 ms | $/ready vs module | first reply vs module | size MiB | build s |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const verdict = r.id === 'module' ? '' : r.readyRatio < TARGET ? ' PASS' : ' MISS';
    const label = r.id === 'module' ? '`python -m bridge serve`' : `bundle, ${r.id}`;
    console.log(`| ${label} | ${round(r.readyMs.p50, 0)} | ${round(r.readyMs.p99, 0)} | ${round(r.firstReplyMs.p50, 0)} | `
      + `${r.readyRatio.toFixed(2)}x${verdict} | ${r.firstReplyRatio.toFixed(2)}x | `
      + `${r.bytes === null ? '-' : (r.bytes / MiB).toFixed(1)} | ${r.buildSeconds ?? (r.bytes === null ? '-' : 'cached')} |`);
  }
  console.log(`\ntarget: bundle start-up to $/ready < ${TARGET}x the module's. Whole run: ${round((performance.now() - started) / 1000, 0)} s.`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ machine, app: opts.app, spawns: opts.spawns, results, builds }, null, 2));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
