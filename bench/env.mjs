// Where the benchmarks run: the repository, the Python they spawn, its environment, the machine.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { round } from './report.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `$BRIDGE_PYTHON`, else the repository's .venv, else python3, as the real executable. */
export function resolvePython() {
  const venv = path.join(REPO, '.venv', 'bin', 'python');
  const given = process.env.BRIDGE_PYTHON || (existsSync(venv) ? venv : 'python3');
  // Run what the interpreter calls itself, so wrappers (pyenv shims) add no start-up time.
  const out = execFileSync(given, ['-c', 'import sys, platform; print(sys.executable); print(platform.python_version())'])
    .toString().trim().split('\n');
  return { given, exe: out[0], version: out[1] };
}

/**
 * Another checkout to serve side by side with this one (`--against DIR`): its directory and a
 * label, its commit's short hash. Its bridge is imported from DIR (the servers' working
 * directory, first on `python -m`'s path), with this repository's Python and dependencies.
 */
export function checkout(dir, die) {
  const abs = path.resolve(dir);
  if (!existsSync(path.join(abs, 'bridge', '__init__.py')) || !existsSync(path.join(abs, 'bench'))) {
    die(`--against ${dir}: not a bridge checkout (no bridge/ and bench/ there)`);
  }
  let label = path.basename(abs);
  try {
    const git = (...args) => execFileSync('git', ['-C', abs, ...args], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    if (realpathSync(git('rev-parse', '--show-toplevel')) === realpathSync(abs)) label = git('rev-parse', '--short', 'HEAD');
  } catch {
    // not a git checkout: its folder's name
  }
  return { dir: abs, label };
}

/**
 * The environment servers run in. PYTHONDONTWRITEBYTECODE would make every start-up
 * recompile bridge from source, and PYTHONUNBUFFERED changes stdout buffering; an app
 * spawning its sidecar sets neither, so both are dropped unless --keep-env.
 */
export function childEnv(opts) {
  const env = { ...process.env };
  if (!opts.keepEnv) {
    delete env.PYTHONDONTWRITEBYTECODE;
    delete env.PYTHONUNBUFFERED;
  }
  return env;
}

export function machineInfo(py) {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    memGiB: round(os.totalmem() / 2 ** 30, 1),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    python: py.version,
    pythonExe: py.exe,
  };
}

/**
 * Pins processes, every thread of each, to one CPU with taskset. Returns a function that
 * puts their affinity back, or null where taskset is missing or refused (nothing changed).
 */
export function pinToCpu(pids, cpu) {
  const saved = [];
  const restore = () => {
    for (const [pid, mask] of saved) {
      try {
        execFileSync('taskset', ['-a', '-p', mask, String(pid)], { stdio: 'ignore' });
      } catch {
        // the process is gone
      }
    }
  };
  try {
    for (const pid of pids) {
      const mask = /:\s*([0-9a-f]+)\s*$/i.exec(execFileSync('taskset', ['-p', String(pid)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString())[1];
      saved.push([pid, mask]);
      execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
    }
  } catch {
    restore();
    return null;
  }
  return restore;
}

/** The CPU with the most idle time over the next `ms` milliseconds (/proc/stat), or 0. */
export async function idlestCpu(ms = 200) {
  const idle = () => {
    try {
      return Object.fromEntries(readFileSync('/proc/stat', 'latin1').split('\n')
        .filter((l) => /^cpu\d+ /.test(l))
        .map((l) => {
          const f = l.split(/\s+/);
          return [Number(f[0].slice(3)), Number(f[4]) + Number(f[5])]; // idle + iowait
        }));
    } catch {
      return null;
    }
  };
  const a = idle();
  await new Promise((r) => setTimeout(r, ms));
  const b = idle();
  if (!a || !b) return 0;
  let best = 0;
  let most = -1;
  for (const cpu of Object.keys(b)) {
    const d = b[cpu] - (a[cpu] ?? 0);
    if (d > most) [best, most] = [Number(cpu), d];
  }
  return best;
}
