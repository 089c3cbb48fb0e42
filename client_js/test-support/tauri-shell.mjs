// The Rust side of Tauri's shell plugin, behind the official `mockIPC` of
// '@tauri-apps/api/mocks': tests run the REAL '@tauri-apps/plugin-shell' JS (its Command,
// Child and Channel), and the commands it invokes (`plugin:shell|spawn`, `stdin_write`,
// `kill`) really run the process, with node:child_process. What stands in is only what Node
// has no Tauri runtime for: the plugin's Rust code and Tauri's IPC, written here after
// tauri-apps/plugins-workspace plugins/shell/src (v2.0.2, commit 77149dc; pytauri-wheel 0.8
// ships tauri-plugin-shell 2.3.1 with the same messages, and tests/tauri/ runs that one in a
// real webview, where the fixed-args rule below was seen to hold):
//
// - IPC: the arguments are serialised as Tauri's process-ipc-message-fn.js does (JSON with
//   Uint8Array/ArrayBuffer as number arrays, a Channel as "__CHANNEL__:<id>"); errors reject
//   with a string.
// - ACL: a command needs its permission (`shell:allow-spawn`, `shell:allow-stdin-write`,
//   `shell:allow-kill`) in a capability for the window ('main').
// - commands.rs prepare_cmd: a sidecar must be listed in tauri.conf.json > bundle >
//   externalBin (with or without its extension), else "sidecar not configured under ...".
//   `env` is added to the inherited environment (`null` clears it), `cwd` as given; an
//   `encoding` other than 'raw' is a WHATWG label (encoding_rs), else "unknown encoding".
// - scope.rs ShellScope::_prepare picks the allow entry by `name` ("Scoped command X not
//   found") and builds the arguments FROM THE ENTRY, not from the caller: `args: true` passes
//   the caller's; `false` or none runs none; a list runs its own items, where a fixed string
//   is used as it is (the caller's value at that position is ignored) and `{ validator }`
//   takes the caller's argument at that position, which must match `^validator$` (the
//   pattern as written with `raw: true`); the caller's arguments past the list are dropped.
// - process/mod.rs: stdout/stderr events carry one line each, cut by tauri_utils::io::read_line
//   (up to and including "\n", else a "\r"), decoded as UTF-8 (a line that is not becomes an
//   'Error' event), or with `encoding: 'raw'` every chunk read as bytes; 'Terminated'
//   { code, signal } once the process exited and both pipes are drained; kill() is SIGKILL.
//   stdin_write and kill on a pid that is gone do nothing; there is no way to close stdin.
// - Tauri's Channel: messages { index, message }, then { index, end: true } when the plugin
//   drops it after 'Terminated'.
//
// `sidecars` maps each externalBin entry to the real command that stands for the binary
// (Tauri runs the file of that name beside the app's executable).

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { clearMocks, mockIPC, mockWindows } from '@tauri-apps/api/mocks';
// By path: loader.mjs maps the bare name to tauri-shell-module.mjs, which re-exports this.
import * as plugin from '../node_modules/@tauri-apps/plugin-shell/dist-js/index.js';

export function installTauriShell({ tauriConf, capabilities, sidecars, window: label = 'main' }) {
  const ownWindow = globalThis.window === undefined;
  // A page's window: an EventTarget (pagehide) with the crypto the mocks' callbacks use.
  if (ownWindow) globalThis.window = Object.assign(new EventTarget(), { crypto: globalThis.crypto });
  const externalBin = tauriConf?.bundle?.externalBin ?? [];
  const granted = capabilities.filter((capability) => (capability.windows ?? []).some((w) => w === label || w === '*'));
  const permissions = granted.flatMap((capability) => capability.permissions ?? []);
  const identifiers = new Set(permissions.map((p) => (typeof p === 'string' ? p : p.identifier)));
  const spawnScope = permissions.filter((p) => typeof p === 'object' && p.identifier === 'shell:allow-spawn').flatMap((p) => p.allow ?? []);
  let installed = true;
  /** Running children by pid, as the plugin's `children` map. */
  const children = new Map();
  /** Every spawn request: { program, args, options } as the page passed them, `ran` the args run. */
  const spawned = [];

  const commands = {
    spawn({ program, args, options, onEvent }) {
      const request = { program, args, options };
      spawned.push(request);
      const { argv, decode, raw } = prepare(program, args, options);
      const real = sidecars[argv.bin];
      if (!real) throw `No such file or directory (os error 2): the test gave no command for ${argv.bin}`;
      request.ran = argv.args;
      const child = spawn(real.command, [...(real.args ?? []), ...argv.args], {
        cwd: options.cwd ?? real.cwd,
        env: options.env === null ? {} : { ...process.env, ...(options.env ?? {}) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      return new Promise((resolve, reject) => {
        child.once('error', (error) => reject(`${error.message} (os error ${-error.errno})`));
        child.once('spawn', () => {
          children.set(child.pid, child);
          child.stdin.on('error', () => {}); // a write after the child died: write_all's error is the write's
          const channel = channelTo(onEvent, () => installed);
          pump(child.stdout, 'Stdout', channel, decode, raw);
          pump(child.stderr, 'Stderr', channel, decode, raw);
          child.on('close', (code, signal) => {
            children.delete(child.pid);
            channel.send({ event: 'Terminated', payload: { code, signal: signal ? constants.signals[signal] : null } });
            channel.end();
          });
          resolve(child.pid);
        });
      });
    },

    async stdin_write({ pid, buffer }) {
      const child = children.get(pid);
      if (!child) return null;
      let bytes;
      if (typeof buffer === 'string') bytes = Buffer.from(buffer, 'utf8');
      else if (Array.isArray(buffer) && buffer.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) bytes = Buffer.from(buffer);
      else throw 'invalid args `buffer` for command `stdin_write`: data did not match any variant of untagged enum Buffer';
      await new Promise((resolve) => child.stdin.write(bytes, () => resolve()));
      return null;
    },

    kill({ pid }) {
      const child = children.get(pid);
      children.delete(pid);
      child?.kill('SIGKILL');
      return null;
    },
  };
  const permissionOf = { spawn: 'shell:allow-spawn', stdin_write: 'shell:allow-stdin-write', kill: 'shell:allow-kill' };

  /** commands.rs prepare_cmd with scope.rs ShellScope::_prepare, for sidecars. */
  function prepare(program, args, options) {
    if (!options.sidecar) throw `program not allowed on the configured shell scope: ${program}`;
    const bin = externalBin.find((entry) => entry === program || entry === program.replace(/\.[^/.]+$/, ''));
    if (!bin) throw `sidecar not configured under \`tauri.conf.json > bundle > externalBin\`: ${program}`;
    const entry = spawnScope.find((e) => e.name === program);
    if (!entry) throw `Scoped command ${program} not found`;
    if (entry.sidecar !== true) throw 'The scoped command was called with the improper sidecar flag set';
    let decode;
    const raw = options.encoding === 'raw';
    if (options.encoding === undefined || raw) {
      const utf8 = new TextDecoder('utf-8', { fatal: true });
      decode = (bytes) => utf8.decode(bytes);
    } else {
      let decoder;
      try {
        decoder = new TextDecoder(options.encoding);
      } catch {
        throw `unknown encoding ${options.encoding}`;
      }
      decode = (bytes) => decoder.decode(bytes);
    }
    return { argv: { bin, args: scopedArgs(program, entry.args ?? false, args) }, decode, raw };
  }

  function dispatch(cmd, args) {
    const name = cmd.startsWith('plugin:shell|') ? cmd.slice('plugin:shell|'.length) : null;
    const command = name && commands[name];
    if (!command) throw `${cmd.replace(/^plugin:(\w+)\|/, '$1.')} not allowed. Command not found`;
    if (!identifiers.has(permissionOf[name])) throw `shell.${name} not allowed. Permissions associated with this command: ${permissionOf[name]}`;
    return command(JSON.parse(serialize(args)));
  }

  mockWindows(label);
  mockIPC(async (cmd, args) => dispatch(cmd, args));

  const shell = {
    /** The real '@tauri-apps/plugin-shell' module. */
    module: plugin,
    spawned,
    /** Pids of children still running. */
    running: () => [...children.keys()],
    uninstall() {
      installed = false;
      for (const child of children.values()) child.kill('SIGKILL');
      children.clear();
      clearMocks();
      if (ownWindow) delete globalThis.window;
    },
  };
  return shell;
}

/**
 * scope.rs ShellScope::_prepare: the arguments run for a scope entry's `allowed` args and the
 * caller's. A fixed item is the entry's own; the caller's are used only where the entry says so.
 */
export function scopedArgs(program, allowed, args) {
  if (allowed === true) return typeof args === 'string' ? [args] : (args ?? []);
  const list = allowed === false ? [] : allowed;
  if (!Array.isArray(args)) {
    // Single(string) or None: only an entry of fixed args accepts "no args".
    if ((args ?? '') === '' && list.every((item) => typeof item === 'string')) return [...list];
    throw `Scoped command ${program} received arguments in an unexpected format`;
  }
  return list.map((item, i) => {
    if (typeof item === 'string') return item;
    const pattern = item.raw ? item.validator : `^${item.validator}$`;
    if (i >= args.length) throw `Scoped command argument at position ${i} must match regex validation ${pattern} but it was not found`;
    if (!new RegExp(pattern, 'u').test(args[i])) throw `Scoped command argument at position ${i} was found, but failed regex validation ${pattern}`;
    return args[i];
  });
}

/** Tauri's process-ipc-message-fn.js: JSON, bytes as number arrays, a Channel as "__CHANNEL__:<id>". */
function serialize(args) {
  return JSON.stringify(args ?? null, (_key, value) => {
    if (value instanceof Map) return Object.fromEntries(value);
    if (value instanceof Uint8Array) return Array.from(value);
    if (value instanceof ArrayBuffer) return Array.from(new Uint8Array(value));
    return value;
  });
}

/**
 * Tauri's Channel on the webview: numbered messages through the page's callback, then the end;
 * none once `live()` is false (the page's callbacks are gone with its mocks).
 */
function channelTo(onEvent, live) {
  const match = /^__CHANNEL__:(\d+)$/.exec(onEvent ?? '');
  if (!match) throw `invalid args \`onEvent\` for command \`spawn\`: invalid channel value \`${onEvent}\``;
  const id = Number(match[1]);
  let index = 0;
  const deliver = (message) => {
    const body = JSON.parse(JSON.stringify(message));
    setImmediate(() => live() && globalThis.window.__TAURI_INTERNALS__.runCallback(id, body));
  };
  return {
    send: (message) => deliver({ index: index++, message }),
    end: () => deliver({ index, end: true }),
  };
}

/** process/mod.rs read_line / read_raw_bytes: one event a line ("\n", else "\r" ends it), or a chunk. */
function pump(stream, event, channel, decode, raw) {
  const emit = (bytes) => {
    if (raw) return channel.send({ event, payload: Array.from(bytes) });
    let payload;
    try {
      payload = decode(bytes);
    } catch (error) {
      return channel.send({ event: 'Error', payload: error.message });
    }
    channel.send({ event, payload });
  };
  if (raw) {
    stream.on('data', emit);
    return;
  }
  let pending = Buffer.alloc(0);
  stream.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    for (;;) {
      let end = pending.indexOf(0x0a);
      if (end === -1) end = pending.indexOf(0x0d);
      if (end === -1) break;
      emit(pending.subarray(0, end + 1));
      pending = pending.subarray(end + 1);
    }
  });
  stream.on('end', () => {
    if (pending.length) emit(pending);
  });
}
