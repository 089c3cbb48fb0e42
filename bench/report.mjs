// Statistics and the printed report: summaries, ratios to the floor, targets, tables.

export const TARGETS = {
  pipelined: { min: 0.5, text: '>= 0.5x floor' },
  p50: { max: 1.5, text: '<= 1.5x floor' },
  large: { min: 0.8, text: '>= 0.8x floor' },
  startup: { below: 2.0, text: '< 2x import' },
};

/** Issue 17's targets, against the JSON floor (bench/floor_json.py: the same work, no host). */
export const JSON_TARGETS = {
  cpu: { max: 1.3, text: '<= 1.3x floor' },
  pipelined: { min: 0.85, text: '>= 0.85x floor' },
  large: { min: 1.0, text: '>= 1.0x floor' },
};

export function summary(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, min: round(s[0], 2), p50: round(q(0.5), 2), p99: round(q(0.99), 2), max: round(s[s.length - 1], 2), mean: round(mean, 2) };
}

export function round(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(x)) return x ?? null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function ratio(a, b) {
  return a == null || b == null || b === 0 ? null : a / b;
}

function verdict(x, t) {
  if (x === null) return 'n/a';
  if (t.min !== undefined) return x >= t.min ? 'PASS' : 'MISS';
  if (t.max !== undefined) return x <= t.max ? 'PASS' : 'MISS';
  return x < t.below ? 'PASS' : 'MISS';
}

/** Each server against the floor of its framing; bridge rows also get PASS/MISS. */
export function computeRatios(results, reference) {
  const floors = Object.fromEntries(results.filter((r) => r.name === 'floor' && r.ok).map((r) => [r.framing, r]));
  const importMs = reference.importPydanticAnyio?.p50 ?? null;
  return results.filter((r) => r.ok && r.name !== 'floor' && r.name !== 'cat' && !r.name.startsWith('json-floor')).map((r) => {
    const f = floors[r.framing];
    const startMs = r.startup.readyMs?.p50 ?? r.startup.firstReplyMs?.p50 ?? null;
    const out = {
      id: r.id,
      pipelined: ratio(r.pipelined.callsPerSec, f?.pipelined.callsPerSec),
      p50: ratio(r.latencyUs.p50, f?.latencyUs.p50),
      large: ratio(r.large.mibPerSec, f?.large.mibPerSec),
      startup: ratio(startMs, importMs),
      startupBasis: r.startup.readyMs ? '$/ready' : 'first reply',
      firstReply: ratio(r.startup.firstReplyMs?.p50, importMs),
    };
    if (r.name === 'bridge') {
      out.verdicts = Object.fromEntries(Object.keys(TARGETS).map((k) => [k, verdict(out[k], TARGETS[k])]));
    }
    return out;
  });
}

/** bridge against the JSON floors of its framing (batched writes, and a write per reply):
 * CPU per call, pipelined calls/s, 1 MiB. */
export function computeJsonRatios(results) {
  const rows = [];
  for (const floorName of ['json-floor', 'json-floor-each']) {
    const floors = Object.fromEntries(results.filter((r) => r.name === floorName && r.ok).map((r) => [r.framing, r]));
    for (const r of results.filter((x) => x.ok && x.name.startsWith('bridge') && floors[x.framing])) {
      const f = floors[r.framing];
      const out = {
        id: r.id,
        floor: floorName,
        cpu: ratio(r.pipelined.serverCpuUsPerCall, f.pipelined.serverCpuUsPerCall),
        pipelined: ratio(r.pipelined.callsPerSec, f.pipelined.callsPerSec),
        large: ratio(r.large.mibPerSec, f.large.mibPerSec),
      };
      out.verdicts = Object.fromEntries(Object.keys(JSON_TARGETS).map((k) => [k, verdict(out[k], JSON_TARGETS[k])]));
      rows.push(out);
    }
  }
  return rows;
}

export function fx(x) {
  return x === null || x === undefined ? '-' : `${x.toFixed(2)}x`;
}

export function num(x, d = 0) {
  if (x === null || x === undefined) return '-';
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The Markdown report printed on stdout (and pasted into bench/README.md). */
export function report(out) {
  const lines = [];
  const m = out.machine;
  const quick = out.profile === 'quick' ? ' [--quick: small counts, noisy]' : '';
  lines.push(`### ${m.date.slice(0, 10)}: ${m.cpus} cores (${m.cpuModel}), ${m.memGiB} GiB, Node ${m.node}, Python ${m.python}${quick}`);
  lines.push('');
  const ok = out.results.filter((r) => r.ok);
  lines.push(table(
    ['server', 'framing', 'p50 us', 'p99 us', 'pipelined calls/s', 'server cpu us/call', '1 MiB msg/s', 'ready ms', 'first reply ms', 'peak RSS MiB'],
    ok.map((r) => [
      r.name === 'cat' ? 'cat (driver ceiling)' : r.version ? `${r.name} ${r.version}` : r.name,
      r.framing,
      num(r.latencyUs.p50), num(r.latencyUs.p99),
      num(r.pipelined.callsPerSec), num(r.pipelined.serverCpuUsPerCall, 1),
      num(r.large.msgPerSec, 1),
      r.startup.readyMs ? num(r.startup.readyMs.p50) : '-', num(r.startup.firstReplyMs?.p50),
      r.memory?.hwmKiB ? num(r.memory.hwmKiB / 1024, 1) : '-',
    ]),
  ));
  const noted = ok.filter((r) => r.notifications);
  if (noted.length) {
    lines.push('');
    lines.push(table(
      ['server', 'framing', 'notifications/s', 'server cpu us/notification'],
      noted.map((r) => [r.name, r.framing, num(r.notifications.perSec), num(r.notifications.serverCpuUsPerNotification, 2)]),
    ));
  }
  lines.push('');
  const ref = out.reference;
  lines.push(`Reference: \`python -c pass\` ${num(ref.pythonBare?.p50)} ms, \`python -c "import pydantic, anyio"\` ${num(ref.importPydanticAnyio?.p50)} ms (medians of ${ref.importPydanticAnyio?.n ?? 0}).`);
  if (out.ratios.length) {
    lines.push('');
    lines.push(table(
      ['vs floor, same framing', 'pipelined calls/s', 'p50 latency', '1 MiB bytes/s', 'start-up / import', 'first reply / import'],
      [
        ['target (bridge)', TARGETS.pipelined.text, TARGETS.p50.text, TARGETS.large.text, TARGETS.startup.text, '(no target)'],
        ...out.ratios.map((r) => {
          const cell = (key) => (r.verdicts ? `${fx(r[key])} ${r.verdicts[key]}` : fx(r[key]));
          return [r.id, cell('pipelined'), cell('p50'), cell('large'), `${cell('startup')} (${r.startupBasis})`, fx(r.firstReply)];
        }),
      ],
    ));
  }
  if (out.jsonRatios?.length) {
    lines.push('');
    lines.push(table(
      ['vs a JSON floor, same framing', 'floor', 'server cpu per call', 'pipelined calls/s', '1 MiB bytes/s'],
      [
        ['target (issue 17)', '', JSON_TARGETS.cpu.text, JSON_TARGETS.pipelined.text, JSON_TARGETS.large.text],
        ...out.jsonRatios.map((r) => [r.id, r.floor, ...['cpu', 'pipelined', 'large'].map((k) => `${fx(r[k])} ${r.verdicts[k]}`)]),
      ],
    ));
  }
  const notes = [];
  for (const r of out.results.filter((x) => !x.ok)) notes.push(`FAILED ${r.id} in ${r.failedIn}: ${r.error}`);
  for (const s of out.skipped) notes.push(`skipped ${s.id}: ${s.reason}`);
  for (const r of ok) {
    if (r.close?.forced) notes.push(`note ${r.id}: did not exit within 5 s of stdin EOF (sent ${r.close.forced})`);
    else if (r.close && r.close.code !== 0) notes.push(`note ${r.id}: exited with code ${r.close.code} on stdin EOF`);
    if (r.otherNotifications?.length) notes.push(`note ${r.id}: also sent ${JSON.stringify(r.otherNotifications).slice(0, 200)}`);
  }
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}
