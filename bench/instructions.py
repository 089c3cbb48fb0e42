"""Instructions a call, counted by callgrind: a measure of the host's work that other load on
the machine does not move (a benchmark, not a test).

On a shared machine two runs of the same tree differ by 5% and more in time, more than most
single changes to the hot path are worth; the count of instructions a call differs by about
0.5%. Each case runs bench/inprocess.py under ``valgrind --tool=callgrind`` twice, for two
numbers of rounds; the difference, over the calls between them, leaves out start-up and the
warm-up. Trees are this checkout and each ``--against DIR`` (a copy of an older commit, or
``.build/compiled``), run in one go, with ratios to this checkout's count.

    .venv/bin/python bench/instructions.py [--against DIR ...] [--cases echo,chain,lsp]

Instructions are not time (a cache miss or a system call costs more than its count), so a
change is still judged by bench/run.mjs; this tells whether it is worth running that, and how
large a change is when time alone cannot say. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: name -> bench/inprocess.py's arguments
CASES = {
    "echo": ["--method", "echo"],
    "lsp": ["--method", "echo", "--framing", "lsp"],
    "chain": ["--app", "bench.middleware_app:plain", "--method", "echo_chain"],
    "add": ["--method", "add", "--params", '{"a": 1, "b": 1}', "--result", "2"],
}
SHORT, LONG = 50, 250  # rounds of 128 calls; the count a call is over the 200 rounds between


def count(tree: Path, case: list[str], rounds: int) -> int:
    """Instructions of one run of bench/inprocess.py from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         str(REPO / "bench" / "inprocess.py"), *case, "--rounds", str(rounds), "--reps", "0"],
        env=env, cwd=tree, capture_output=True, text=True, check=False,
    )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or not found:
        raise SystemExit(f"{tree}: {' '.join(case)} failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_call(tree: Path, case: list[str]) -> float:
    return (count(tree, case, LONG) - count(tree, case, SHORT)) / ((LONG - SHORT) * 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, action="append", default=[], help="another tree to count")
    parser.add_argument("--cases", default="echo,chain,lsp", help=f"from {','.join(CASES)}")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind: apt-get install valgrind")
        return
    trees = {"this tree": REPO, **{str(t): t.resolve() for t in args.against}}
    cases = args.cases.split(",")
    print("| tree | " + " | ".join(f"{c} (instructions a call)" for c in cases) + " |")
    print("|---" * (len(cases) + 1) + "|")
    first: dict[str, float] = {}
    for label, tree in trees.items():
        cells = []
        for case in cases:
            n = per_call(tree, CASES[case])
            first.setdefault(case, n)
            cells.append(f"{n:,.0f}" + ("" if label == "this tree" else f" ({n / first[case]:.3f}x)"))
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
