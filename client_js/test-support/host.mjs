// How the end-to-end tests find and start the Python host. Kept out of test/ because
// `node --test test/` runs every .mjs file under test/ as a test file.

import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the host runs from here so `python -m bridge` finds the package. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** BRIDGE_PYTHON, else the repository's .venv interpreter, else python3 on PATH. */
export function pythonCommand() {
  if (process.env.BRIDGE_PYTHON) return process.env.BRIDGE_PYTHON;
  const venv =
    process.platform === 'win32' ? join(repoRoot, '.venv', 'Scripts', 'python.exe') : join(repoRoot, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** True while a process with this pid exists (signal 0 only checks). */
export function processExists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Resolve with the first value `subscribe` hands its callback that passes `predicate`. */
export function nextEvent(subscribe, predicate = () => true) {
  return new Promise((resolve) => {
    const off = subscribe((value) => {
      if (!predicate(value)) return;
      off();
      resolve(value);
    });
  });
}

/** Where the test apps (`*_app.py`) live. */
export const supportDir = fileURLToPath(new URL('./', import.meta.url));

/**
 * The spawnSidecar options that serve a test app of test-support/ (`stream_app:app`): this
 * repository's bridge on PYTHONPATH, a generous ready timeout, stderr silent; `extra` over them.
 */
export function supportAppOptions(app, extra = {}) {
  return {
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', app],
    cwd: supportDir,
    env: { PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(delimiter) },
    readyTimeout: 20_000,
    onStderr: null,
    ...extra,
  };
}

/** The spawnSidecar options of a host with the demo app and the state and collab plugins (in memory). */
export function collabHostOptions() {
  return {
    command: pythonCommand(),
    args: ['-m', 'bridge', 'serve', 'bridge.builtins.demo:app', '--plugin', 'state', '--plugin', 'collab'],
    cwd: repoRoot,
    env: { BRIDGE_LOG_LEVEL: 'warning', BRIDGE_STATE_MEMORY: '1' },
    readyTimeout: 20_000,
  };
}
