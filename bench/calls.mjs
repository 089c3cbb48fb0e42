// Small echo calls as the benchmarks time them: sequential round trips, and pipelined
// calls from a pre-encoded ring of requests. Shared by run.mjs and middleware.mjs.

import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

import { fmtExit } from './server.mjs';

export const SMALL = 'hello, bridge';

export function replyValue(msg) {
  if (msg.error) throw new Error(`error reply: ${JSON.stringify(msg.error).slice(0, 300)}`);
  // The floor sends the request itself back, so its value is still in params.
  return 'result' in msg ? msg.result : msg.params?.value;
}

/** n sequential calls of `method` with {value: SMALL}; round trips in microseconds. */
export async function latencyBlock(s, n, nextId, method = 'echo') {
  const times = [];
  for (let i = 0; i < n; i++) {
    const [msg, ms] = await s.call(nextId(), SMALL, 30000, method);
    if (replyValue(msg) !== SMALL) throw new Error(`bad echo ${JSON.stringify(msg).slice(0, 200)}`);
    times.push(ms * 1000);
  }
  return times;
}

/**
 * Pre-encoded request frames for pipelining: ids base..base+count-1 back to back, so a
 * batch is one slice of one Buffer and the driver builds no strings per call. Ids are
 * reused round-robin; count is many times the window, so no two outstanding calls share one.
 */
export function encodeRing(frame, base, count, method = 'echo') {
  const value = JSON.stringify(SMALL);
  const bufs = [];
  for (let i = 0; i < count; i++) {
    bufs.push(Buffer.from(frame(`{"jsonrpc":"2.0","id":${base + i},"method":${JSON.stringify(method)},"params":{"value":${value}}}`)));
  }
  const offsets = [0];
  for (const b of bufs) offsets.push(offsets[offsets.length - 1] + b.length);
  return { base, count, offsets, buf: Buffer.concat(bufs) };
}

/** n small calls with up to `window` outstanding, topped up in batches after each read. */
export function pipelinedBlock(s, ring, n, window) {
  return new Promise((resolve, reject) => {
    const minBatch = Math.max(1, window >> 2);
    const { base, count, offsets, buf } = ring;
    let sent = 0;
    let done = 0;
    let bad = 0;
    const fill = () => {
      const room = Math.min(window - (sent - done), n - sent);
      if (room <= 0 || (room < minBatch && sent + room < n)) return;
      const from = sent % count;
      const to = from + room;
      if (to <= count) {
        s.write(buf.subarray(offsets[from], offsets[to]));
      } else {
        s.write(buf.subarray(offsets[from], offsets[count]));
        s.write(buf.subarray(0, offsets[to - count]));
      }
      sent += room;
    };
    const finish = (err) => {
      s.onReply = null;
      s.afterChunk = null;
      if (err) reject(err);
      else resolve({ elapsedMs: performance.now() - t0, bad });
    };
    s.onReply = (msg) => {
      if (msg === null) return finish(new Error(`server exited (${fmtExit(s.exit)})`));
      if (!(msg.id >= base && msg.id < base + count) || msg.error || replyValue(msg) !== SMALL) bad++;
      if (++done === n) finish(null);
    };
    s.afterChunk = fill;
    const t0 = performance.now();
    fill();
  });
}

let CLK_TCK = null;
export function clockTicks() {
  if (CLK_TCK === null) {
    try {
      CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      CLK_TCK = 100;
    }
  }
  return CLK_TCK;
}

/** Splits n into `rounds` near-equal positive parts. */
export function split(n, rounds) {
  const parts = [];
  for (let r = 0; r < rounds; r++) parts.push(Math.floor((n * (r + 1)) / rounds) - Math.floor((n * r) / rounds));
  return parts.filter((x) => x > 0);
}
