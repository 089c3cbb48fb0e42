// A stand-in for '@tauri-apps/plugin-shell' (v2) that really runs the process, with
// node:child_process, and behaves like the plugin where a transport can tell:
//
// - Command.sidecar(program, args, options) is refused unless `program` is listed in the
//   app's tauri.conf.json > bundle > externalBin and a capability grants `shell:allow-spawn`
//   for it with matching args (strings exact, `{ validator }` a regex for the whole arg);
//   child.write needs `shell:allow-stdin-write`, child.kill `shell:allow-kill`. Refusals
//   reject with a string, as the plugin's invoke() does.
// - `env` is added to the inherited environment (null clears it); `cwd` as given.
// - stdout/stderr 'data' events carry one line each, its "\n" (or lone "\r") included,
//   decoded as UTF-8 (an invalid line becomes an 'error' event instead), or with
//   `encoding: 'raw'` each chunk as an array of byte values (what the plugin's JSON channel
//   delivers); another `encoding` is a TextDecoder label.
// - 'close' { code, signal } comes once the process exited and its output was delivered;
//   signal is a number. kill() is SIGKILL. There is no way to end the child's stdin.
//
// `sidecars` maps each externalBin entry to the real command that stands for the binary.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';

export const SHELL = Symbol.for('bridge.tauri-shell-standin');

export function installTauriShell({ tauriConf, capabilities, sidecars, window = 'main' }) {
  const externalBin = tauriConf?.bundle?.externalBin ?? [];
  const granted = capabilities.filter((capability) => (capability.windows ?? []).some((w) => w === window || w === '*'));
  const permissions = granted.flatMap((capability) => capability.permissions ?? []);
  const identifiers = new Set(permissions.map((p) => (typeof p === 'string' ? p : p.identifier)));
  const spawnScope = permissions.filter((p) => typeof p === 'object' && p.identifier === 'shell:allow-spawn').flatMap((p) => p.allow ?? []);
  const children = new Map();
  /** Every spawn: { program, args, options } as the app passed them. */
  const spawned = [];

  function allows(permission) {
    return identifiers.has(permission);
  }

  function argsMatch(allowed, args) {
    if (allowed === true) return true;
    if (!Array.isArray(allowed)) return args.length === 0;
    return (
      allowed.length === args.length &&
      allowed.every((rule, i) => (typeof rule === 'string' ? rule === args[i] : new RegExp(`^(?:${rule.validator})$`).test(args[i])))
    );
  }

  class EventEmitter {
    #listeners = Object.create(null);

    addListener(event, listener) {
      return this.on(event, listener);
    }
    removeListener(event, listener) {
      return this.off(event, listener);
    }
    on(event, listener) {
      (this.#listeners[event] ??= []).push(listener);
      return this;
    }
    once(event, listener) {
      const wrapper = (arg) => {
        this.off(event, wrapper);
        listener(arg);
      };
      return this.on(event, wrapper);
    }
    off(event, listener) {
      if (this.#listeners[event]) this.#listeners[event] = this.#listeners[event].filter((l) => l !== listener);
      return this;
    }
    removeAllListeners(event) {
      if (event) delete this.#listeners[event];
      else this.#listeners = Object.create(null);
      return this;
    }
    emit(event, arg) {
      const listeners = this.#listeners[event];
      if (!listeners) return false;
      for (const listener of [...listeners]) listener(arg);
      return true;
    }
    listenerCount(event) {
      return this.#listeners[event]?.length ?? 0;
    }
    prependListener(event, listener) {
      (this.#listeners[event] ??= []).unshift(listener);
      return this;
    }
    prependOnceListener(event, listener) {
      const wrapper = (arg) => {
        this.off(event, wrapper);
        listener(arg);
      };
      return this.prependListener(event, wrapper);
    }
  }

  class Child {
    constructor(pid) {
      this.pid = pid;
    }

    async write(data) {
      if (!allows('shell:allow-stdin-write')) throw 'shell.stdin_write not allowed. Permissions associated with this command: shell:allow-stdin-write';
      const process = children.get(this.pid);
      if (!process) return; // the plugin ignores writes to a child that is gone
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
      await new Promise((resolve) => process.stdin.write(bytes, () => resolve()));
    }

    async kill() {
      if (!allows('shell:allow-kill')) throw 'shell.kill not allowed. Permissions associated with this command: shell:allow-kill';
      const process = children.get(this.pid);
      children.delete(this.pid);
      process?.kill('SIGKILL');
    }
  }

  class Command extends EventEmitter {
    stdout = new EventEmitter();
    stderr = new EventEmitter();
    #program;
    #args;
    #options;
    #sidecar;

    constructor(program, args = [], options = {}, sidecar = false) {
      super();
      this.#program = program;
      this.#args = typeof args === 'string' ? [args] : args;
      this.#options = options ?? {};
      this.#sidecar = sidecar;
    }

    static create(program, args, options) {
      return new Command(program, args, options, false);
    }

    static sidecar(program, args, options) {
      return new Command(program, args, options, true);
    }

    async spawn() {
      const program = this.#program;
      const args = this.#args;
      const options = this.#options;
      spawned.push({ program, args, options });
      if (!this.#sidecar) throw 'the stand-in runs sidecars only';
      if (!allows('shell:allow-spawn')) throw 'shell.spawn not allowed. Permissions associated with this command: shell:allow-spawn';
      const bin = externalBin.find((entry) => entry === program || entry === program.replace(/\.[^/.]+$/, ''));
      if (!bin) throw `sidecar not configured under \`tauri.conf.json > bundle > externalBin\`: ${program}`;
      const scope = spawnScope.find((entry) => entry.sidecar === true && entry.name === bin);
      if (!scope) throw `Scoped command ${program} not found`;
      if (!argsMatch(scope.args, args)) throw `Scoped command argument at position 0 was found, but failed regex validation`;
      const decode = decoderFor(options.encoding);
      const real = sidecars[bin];
      if (!real) throw `No such file or directory (os error 2): the test gave no command for ${bin}`;

      const env = options.env === null ? {} : { ...process.env, ...(options.env ?? {}) };
      const child = spawn(real.command, [...(real.args ?? []), ...args], {
        cwd: options.cwd ?? real.cwd,
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
      await new Promise((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (error) => reject(`${error.message} (os error ${error.errno ?? '?'})`));
      });
      children.set(child.pid, child);
      child.stdin.on('error', () => {}); // EPIPE after the child died: the plugin's write_all error is not surfaced here
      this.#pump(child.stdout, this.stdout, decode, options.encoding === 'raw');
      this.#pump(child.stderr, this.stderr, decode, options.encoding === 'raw');
      child.on('close', (code, signal) => {
        children.delete(child.pid);
        this.emit('close', { code, signal: signal ? constants.signals[signal] : null });
      });
      return new Child(child.pid);
    }

    async execute() {
      throw 'the stand-in does not implement execute()';
    }

    /** tauri_utils::io::read_line: up to and including "\n", else a lone "\r". */
    #pump(stream, emitter, decode, raw) {
      if (raw) {
        stream.on('data', (chunk) => emitter.emit('data', Array.from(chunk)));
        return;
      }
      let pending = Buffer.alloc(0);
      const emitLine = (bytes) => {
        try {
          emitter.emit('data', decode(bytes));
        } catch (error) {
          this.emit('error', error.message);
        }
      };
      stream.on('data', (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          let end = pending.indexOf(0x0a);
          if (end === -1) end = pending.indexOf(0x0d);
          if (end === -1) break;
          emitLine(pending.subarray(0, end + 1));
          pending = pending.subarray(end + 1);
        }
      });
      stream.on('end', () => {
        if (pending.length) emitLine(pending);
      });
    }
  }

  function decoderFor(encoding) {
    if (encoding === undefined || encoding === 'raw') {
      const utf8 = new TextDecoder('utf-8', { fatal: true });
      return (bytes) => utf8.decode(bytes);
    }
    let decoder;
    try {
      decoder = new TextDecoder(encoding);
    } catch {
      throw `unknown encoding ${encoding}`;
    }
    return (bytes) => decoder.decode(bytes);
  }

  async function open() {
    throw 'the stand-in does not implement open()';
  }

  const shell = {
    module: { Command, Child, EventEmitter, open },
    spawned,
    /** Pids of children still running. */
    running: () => [...children.keys()],
    uninstall() {
      for (const child of children.values()) child.kill('SIGKILL');
      if (globalThis[SHELL] === shell) delete globalThis[SHELL];
    },
  };
  globalThis[SHELL] = shell;
  return shell;
}
