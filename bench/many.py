"""Benchmark: an app of 10,000 methods against one of 10, in one run (a benchmark, not a test).

Each round spawns ``python -m bridge serve bench.many_app:<app>`` for every app, interleaved,
and measures: spawn to ``$/ready``; RSS once ready; pipelined calls/s (window 128) in the first
second after ``$/ready``, every call to the next method round robin (so in the 10,000-method app
each of the first 10,000 calls is a method's first); then calls/s over the following second
(steady state); and peak RSS. Apps: ``plain_N`` (``m<i>(a: int, b: str = "")``: params that
need no pydantic) and ``models_N`` (``m<i>(item: Item)``: a model param). Replies are counted,
and the first reply of each round is checked.

    .venv/bin/python bench/many.py [--rounds 3] [--against DIR]

``--against DIR`` also serves the apps of another checkout (its directory first on the path).

Targets (issue 17): ``$/ready`` within 1.5x and RSS within 2x of the 10-method app; calls/s
in the first second at least 0.9x the steady state.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
APPS = {"plain": {"a": 1}, "models": {"item": {"id": 1}}}
WINDOW = 128


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def measure(app: str, params: dict, count: int, cwd: Path = REPO) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", f"bench.many_app:{app}", "--framing", "ndjson",
                             "--no-plugins", "--no-audit"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert b"$/ready" in proc.stdout.readline()  # type: ignore[union-attr]
        ready_ms = (time.perf_counter() - started) * 1e3
        rss_ready = _kib(proc.pid, "VmRSS") / 1024
        fd_in, fd_out = proc.stdin.fileno(), proc.stdout.fileno()  # type: ignore[union-attr]
        frames = [orjson.dumps({"jsonrpc": "2.0", "id": i, "method": f"m{i % count}", "params": params}) + b"\n"
                  for i in range(count)]
        rates = []
        sent = got = 0
        checked = False
        for _ in range(2):  # the first second, then the next
            since, got_before = time.perf_counter(), got
            while time.perf_counter() - since < 1.0:
                if sent - got < WINDOW:
                    batch = [frames[(sent + k) % count] for k in range(WINDOW - (sent - got))]
                    os.write(fd_in, b"".join(batch))
                    sent += len(batch)
                data = os.read(fd_out, 1 << 16)
                if not checked:
                    assert b'"result":' in data, data[:200]
                    checked = True
                got += data.count(b"\n")
            rates.append((got - got_before) / (time.perf_counter() - since))
        peak = _kib(proc.pid, "VmHWM") / 1024
    finally:
        proc.kill()
        proc.wait()
    return {"ready_ms": ready_ms, "rss_ready": rss_ready, "first": rates[0], "steady": rates[1], "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout to serve as well")
    args = parser.parse_args()
    trees = {"": REPO, **({f"@{args.against.name}": args.against.resolve()} if args.against else {})}
    runs: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for label, cwd in trees.items():
            for kind, params in APPS.items():
                for count in (10, 10_000):
                    runs.setdefault(f"{kind}_{count}{label}", []).append(measure(f"{kind}_{count}", params, count, cwd))

    def med(app: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[app])

    def spread(app: str, key: str, digits: int = 0) -> str:
        values = [r[key] for r in runs[app]]
        return f"{med(app, key):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"

    print(f"{args.rounds} rounds, medians (min-max); Python {sys.version.split()[0]}, {os.cpu_count()} cpus\n")
    print("| app | $/ready ms | RSS ready MiB | first second calls/s | steady calls/s | first/steady | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for app in runs:
        print(f"| {app} | {spread(app, 'ready_ms')} | {spread(app, 'rss_ready', 1)} | {spread(app, 'first')} | "
              f"{spread(app, 'steady')} | {med(app, 'first') / med(app, 'steady'):.2f}x | {spread(app, 'peak', 1)} |")
    print("\n| 10,000 against 10 methods | $/ready | RSS ready | peak RSS |")
    print("|---|---|---|---|")
    for label in trees:
        for kind in APPS:
            big, small = f"{kind}_10000{label}", f"{kind}_10{label}"
            print(f"| {kind}{label} | {med(big, 'ready_ms') / med(small, 'ready_ms'):.2f}x (target <= 1.5x) | "
                  f"{med(big, 'rss_ready') / med(small, 'rss_ready'):.2f}x (target <= 2x) | "
                  f"{med(big, 'peak') / med(small, 'peak'):.2f}x |")


if __name__ == "__main__":
    main()
