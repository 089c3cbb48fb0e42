"""Make ``.build/compiled``: a copy of this checkout with the hot path compiled by mypyc (the
extensions ``BRIDGE_COMPILE=1`` puts in a wheel, by bridge/hot_path.py), and print its path.

The test suite's compiled run (scripts/test.sh) runs there, with ``PYTHONPATH`` at the copy so
every host it spawns imports the compiled modules too; ``node bench/run.mjs --against
.build/compiled`` compares them with the pure ones in one run. The extensions are cached in
``.build/mypyc-<key>``, rebuilt only when a compiled source, the Python or mypy changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bridge.hot_path import HOT_PATH, compile_hot_path  # noqa: E402


def cache_key() -> str:
    import mypy.version

    digest = hashlib.sha256(f"{sys.version}\0{mypy.version.__version__}".encode())
    for name in ("bridge/hot_path.py", *HOT_PATH):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def compiled_extensions(build: Path) -> Path:
    """The cached extensions for the checkout as it is, compiled now if there are none."""
    cache = build / f"mypyc-{cache_key()}"
    if not cache.is_dir():
        for old in build.glob("mypyc-*"):
            shutil.rmtree(old)
        partial = cache.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        compile_hot_path(ROOT, partial)
        partial.rename(cache)
    return cache


def checkout_files() -> list[str]:
    """The checkout's files as git sees them: tracked and new ones, not ignored or deleted."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def main() -> None:
    build = ROOT / ".build"
    build.mkdir(exist_ok=True)
    extensions = compiled_extensions(build)
    tree = build / "compiled"
    shutil.rmtree(tree, ignore_errors=True)
    for name in checkout_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(extensions, tree, dirs_exist_ok=True)
    modules = ROOT / "client_js" / "node_modules"  # the real-part tests bundle pages with them
    if modules.is_dir():
        os.symlink(modules, tree / "client_js" / "node_modules")
    print(tree)


if __name__ == "__main__":
    main()
