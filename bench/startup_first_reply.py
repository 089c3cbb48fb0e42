"""Benchmark: spawn to the first reply of a call sent at spawn, against the import of the
libraries (``python -c "import pydantic, anyio"``), in one run (a benchmark, not a test).

Each round spawns, interleaved, the reference and ``python -m bridge serve bench.echo_app:app``
once per call: ``echo(1)`` (an ``Any`` param: nothing to validate), ``add(1, 2)`` (``int``
params given ints: checked by type, no pydantic) and ``add("1", "2")`` (strings pydantic
converts: its import and the params model are on the way to the reply). The call is written
before the process has started; the times are from spawn to ``$/ready`` and to the reply, and
the peak RSS (VmHWM) once the reply is in. Round 0 is an unmeasured warm-up.

    .venv/bin/python bench/startup_first_reply.py [--rounds 20] [--against DIR ...]

``--against DIR`` (repeatable) also serves the bridge of another checkout (its directory first
on the path).
Target (issue 17): the first reply of a call whose params need validation <= 1.5x the import,
and peak RSS <= 40 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CALLS = {
    "echo(1)": (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}\n', 1),
    "add(1, 2)": (b'{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}\n', 3),
    'add("1", "2")': (b'{"jsonrpc":"2.0","id":1,"method":"add","params":["1","2"]}\n', 3),
}
TARGET = 1.5


def _env() -> dict[str, str]:
    # As an app spawning its sidecar would: bytecode written and read, stdout not unbuffered.
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPATH")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "BRIDGE_FRAMING": "ndjson",
            "BRIDGE_LOG_LEVEL": "warning"}


def reference(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pydantic, anyio"], env=env, check=True)
    return (time.perf_counter() - started) * 1e3


def serve(cwd: Path, frame: bytes, expect: int, env: dict[str, str]) -> tuple[float, float, float, float]:
    """(ms to ``$/ready``, ms to the reply, CPU ms to the reply, peak RSS MiB) of one spawn sent
    ``frame`` at once. The CPU time (the kernel's schedstat of each thread) shows whether a slow
    wall time was the machine's or the process's."""
    import orjson

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "bench.echo_app:app"], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(frame)  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        ready = reply = None
        while reply is None:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError(f"bridge exited ({proc.wait()}) before replying")
            message = orjson.loads(line)
            if message.get("method") == "$/ready":
                ready = (time.perf_counter() - started) * 1e3
            elif message.get("id") == 1:
                reply = (time.perf_counter() - started) * 1e3
                if message.get("result") != expect:
                    raise RuntimeError(f"bad reply {message}")
        cpu = _cpu_ms(proc.pid)
        with open(f"/proc/{proc.pid}/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
        proc.stdin.close()  # type: ignore[union-attr]
        if proc.wait(10) != 0:
            raise RuntimeError(f"bridge exited {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return ready or float("nan"), reply, cpu, peak


def _cpu_ms(pid: int) -> float:
    """CPU time of the process's threads still running (a thread that ended is left out)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except FileNotFoundError:
            pass
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--against", type=Path, action="append", default=[],
                        help="another checkout to serve as well (repeatable)")
    args = parser.parse_args()
    env = _env()
    trees = {"": REPO, **{f"@{other.name}": other.resolve() for other in args.against}}
    imports: list[float] = []
    runs: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in range(args.rounds + 1):
        took = reference(env)
        if r:
            imports.append(took)
        for label, cwd in trees.items():
            for call, (frame, expect) in CALLS.items():
                one = serve(cwd, frame, expect, env)
                if r:
                    runs.setdefault(f"{call}{label}", []).append(one)

    def spread(values: list[float], digits: int = 0) -> str:
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    base = statistics.median(imports)
    print(f"{args.rounds} spawns each, interleaved, medians (min-max); Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus\n")
    print(f"`python -c \"import pydantic, anyio\"`: {spread(imports, 1)} ms\n")
    print("| call sent at spawn | $/ready ms | first reply ms | first reply / import | CPU ms to the reply | "
          "peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name, got in runs.items():
        ratio = statistics.median(g[1] for g in got) / base
        print(f"| {name} | {spread([g[0] for g in got], 1)} | {spread([g[1] for g in got], 1)} | "
              f"{ratio:.2f}x{' PASS' if ratio <= TARGET else ' MISS'} | {spread([g[2] for g in got], 1)} | "
              f"{spread([g[3] for g in got], 1)} |")
    print(f"\ntarget: first reply <= {TARGET}x the import, peak RSS <= 40 MB")


if __name__ == "__main__":
    main()
