"""Make ``.build/compiled``: a copy of this checkout with the hot path compiled by mypyc (the
extensions ``BRIDGE_COMPILE=1`` puts in a wheel, by bridge/hot_path.py), and print its path.

The test suite's compiled run (scripts/test.sh) runs there, with ``PYTHONPATH`` at the copy so
every host it spawns imports the compiled modules too; ``node bench/run.mjs --against
.build/compiled`` compares them with the pure ones in one run. The extensions come from
``hot_path.compiled_copy`` (cached in ``.build/mypyc-<key>``, compiled again when bridge/ or
handlers/, the Python or mypy changes: mypyc may bake in what the hot path imports).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bridge.hot_path import compiled_copy  # noqa: E402


def checkout_files() -> list[str]:
    """The checkout's files as git sees them: tracked and new ones, not ignored or deleted."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def main() -> None:
    build = ROOT / ".build"
    build.mkdir(exist_ok=True)
    # The compiled copy `bridge bundle --compiled` freezes; its extensions go beside the checkout's sources.
    compiled = compiled_copy(ROOT / "bridge", [ROOT / "handlers"], build)
    tree = build / "compiled"
    shutil.rmtree(tree, ignore_errors=True)
    for name in checkout_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    for extension in compiled.rglob("*"):
        if extension.suffix in (".so", ".pyd"):
            shutil.copy2(extension, tree / extension.relative_to(compiled))
    modules = ROOT / "client_js" / "node_modules"  # the real-part tests bundle pages with them
    if modules.is_dir():
        os.symlink(modules, tree / "client_js" / "node_modules")
    print(tree)


if __name__ == "__main__":
    main()
