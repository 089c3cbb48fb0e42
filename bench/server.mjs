// One server process under test: spawn, frame and send requests, route replies, read its
// /proc figures, and close it the way an app would (end stdin, then signals).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { FRAMERS, LARGE, LspReader, NdjsonReader, peekLarge } from './framing.mjs';

export class Server {
  constructor(spec, opts) {
    this.spec = spec;
    this.opts = opts;
    this.frame = FRAMERS[spec.framing];
    this.fullParse = true;
    this.onReply = null; // (msg) => void, set by the phase running
    this.afterChunk = null; // () => void, runs after each stdout chunk is consumed
    this.onReady = null;
    this.readyAt = null;
    this.readyParams = null;
    this.notifications = [];
    this.stderrTail = '';
    this.exit = null;
    this.exitWaiters = [];
  }

  start() {
    const { argv, env, cwd } = this.spec;
    this.t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    const reader = this.spec.framing === 'lsp'
      ? new LspReader((b, s, e) => this.onFrame(b, s, e))
      : new NdjsonReader((b, s, e) => this.onFrame(b, s, e));
    child.stdout.on('data', (chunk) => {
      reader.push(chunk);
      if (this.afterChunk) this.afterChunk();
    });
    child.stderr.on('data', (chunk) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4000);
      if (this.opts.verbose) process.stderr.write(`[${this.spec.id} stderr] ${chunk}`);
    });
    child.stdin.on('error', () => {}); // EPIPE after the server died is reported via exit
    child.on('error', (err) => this.onExit(null, null, err));
    child.on('exit', (code, signal) => this.onExit(code, signal, null));
    return this;
  }

  onExit(code, signal, err) {
    if (this.exit) return;
    this.exit = { code, signal, error: err ? String(err) : null, at: performance.now() };
    for (const w of this.exitWaiters) w(this.exit);
    this.exitWaiters = [];
    if (this.onReply) this.onReply(null); // wake a waiting phase
  }

  onFrame(buf, start, end) {
    let msg;
    try {
      msg = (!this.fullParse && end - start > LARGE)
        ? peekLarge(buf, start, end)
        : JSON.parse(buf.toString('utf8', start, end));
    } catch (err) {
      this.badFrames = (this.badFrames || 0) + 1;
      if (this.badFrames <= 3) console.error(`[bench] ${this.spec.id}: unparsable frame: ${buf.toString('utf8', start, Math.min(end, start + 200))}`);
      return;
    }
    if (msg.id === undefined || msg.id === null) {
      if (msg.method === '$/ready' && this.readyAt === null) {
        this.readyAt = performance.now();
        this.readyParams = msg.params ?? null;
        if (this.onReady) this.onReady();
      } else if (this.notifications.length < 20) {
        this.notifications.push(msg.method ?? msg);
      }
      return;
    }
    if (this.onReply) this.onReply(msg);
  }

  write(data) {
    this.child.stdin.write(data);
  }

  /** Sends a request whose params are {"value": <payload>} without copying the payload. */
  writeLarge(id, payload) {
    const prefix = `{"jsonrpc":"2.0","id":${id},"method":"echo","params":{"value":"`;
    const suffix = '"}}';
    const stdin = this.child.stdin;
    const len = prefix.length + payload.length + suffix.length;
    stdin.cork();
    stdin.write(this.spec.framing === 'lsp' ? `Content-Length: ${len}\r\n\r\n${prefix}` : prefix);
    stdin.write(payload);
    stdin.write(this.spec.framing === 'lsp' ? suffix : suffix + '\n');
    stdin.uncork();
  }

  waitReady(timeoutMs) {
    if (this.readyAt !== null) return Promise.resolve(this.readyAt);
    return withTimeout(new Promise((resolve, reject) => {
      this.onReady = () => resolve(this.readyAt);
      this.exitWaiters.push(() => reject(new Error(`exited before $/ready (${fmtExit(this.exit)})`)));
    }), timeoutMs, 'waiting for $/ready');
  }

  /** One call of `method` (echo) with {value}, resolved with [reply, round-trip ms]. */
  call(id, value, timeoutMs = 30000, method = 'echo') {
    return this.request(id, method, { value }, timeoutMs);
  }

  /** One request with any params, resolved with [reply, round-trip ms]. */
  request(id, method, params, timeoutMs = 30000) {
    const body = `{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)}${params === undefined ? '' : `,"params":${JSON.stringify(params)}`}}`;
    return this.roundTrip(id, () => this.write(this.frame(body)), timeoutMs);
  }

  roundTrip(id, send, timeoutMs) {
    return withTimeout(new Promise((resolve, reject) => {
      if (this.exit) return reject(new Error(`server exited (${fmtExit(this.exit)})`));
      const t = performance.now();
      this.onReply = (msg) => {
        if (msg === null) return reject(new Error(`server exited (${fmtExit(this.exit)})`));
        if (msg.id !== id) return; // a stray reply; keep waiting
        this.onReply = null;
        resolve([msg, performance.now() - t]);
      };
      send();
    }), timeoutMs, `reply to id ${id}`);
  }

  cpuTicks() {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    } catch {
      return null;
    }
  }

  memory() {
    try {
      const status = readFileSync(`/proc/${this.child.pid}/status`, 'latin1');
      const kb = (k) => {
        const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status);
        return m ? Number(m[1]) : null;
      };
      return { hwmKiB: kb('VmHWM'), rssKiB: kb('VmRSS'), threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1]) };
    } catch {
      return null;
    }
  }

  /** Closes stdin and waits for a clean exit; escalates to SIGTERM, then SIGKILL. */
  async close(graceMs = 5000) {
    const t = performance.now();
    const exited = () => new Promise((r) => (this.exit ? r(this.exit) : this.exitWaiters.push(r)));
    this.child.stdin.end();
    let forced = null;
    if (!(await raceTimeout(exited(), graceMs))) {
      forced = 'SIGTERM';
      this.child.kill('SIGTERM');
      if (!(await raceTimeout(exited(), 2000))) {
        forced = 'SIGKILL';
        this.child.kill('SIGKILL');
        await exited();
      }
    }
    return { code: this.exit.code, signal: this.exit.signal, afterEofMs: Math.round((this.exit.at - t) * 10) / 10, forced };
  }

  kill() {
    if (this.child && !this.exit) this.child.kill('SIGKILL');
  }
}

export function fmtExit(e) {
  if (!e) return 'running';
  return e.error ?? (e.signal ? `signal ${e.signal}` : `code ${e.code}`);
}

export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

export function raceTimeout(promise, ms) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r(false), ms); });
  return Promise.race([promise.then(() => true), t]).finally(() => clearTimeout(timer));
}

