"""The Tauri transport in a real Tauri app: pytauri-wheel's prebuilt Tauri 2 runtime with the
shell plugin (tauri-plugin-shell 2.3.1), a WebKitGTK webview under an Xvfb of the test's own,
examples/tauri/src-tauri's tauri.conf.json and capabilities/default.json read unchanged, and
the page (page/main.js, with client_js/src/tauri.js and the real @tauri-apps/plugin-shell
bundled by esbuild) driving the sidecar those allow: a script standing in for the bundle under
its name, serving sidecar_app.py. The page posts each step's outcome to a loopback endpoint.

Merged over the example's config: the page's folder as frontendDist (no dev server), and no
CSP: pytauri-wheel 0.8 serves a folder through a `DirAssets` whose `csp_hashes()` is
`unimplemented!()` (pytauri python/pytauri-wheel/src/lib.rs), which panics as soon as a CSP
is configured; without one the page may also post to the loopback.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import queue
import select
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import venv
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.parts import INSTALL, require

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLIENT = REPO / "client_js"
SRC_TAURI = REPO / "examples" / "tauri" / "src-tauri"
SCREENSHOT = REPO / "test-artifacts" / "tauri-webview.png"
#: What the page runs, in order.
STEPS = (
    'fixed args: the capability runs ["serve"], not the page\'s args',
    "a sidecar tauri.conf.json does not list is refused",
    "$/ready",
    "calls by name and by position",
    "a large multi-byte echo",
    "progress",
    "events",
    "a stream paced by credit",
    "an abort sends $/cancelRequest; the host answers -32800",
    "an error keeps its code, message and data",
    "close() sends $/exit: the call in flight finishes, the host exits 0",
    "close() kills a sidecar still busy after closeTimeout; calls in flight reject",
    "a sidecar left open, for the app's exit to end",
)
DEADLINE = 30.0

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="pytauri-wheel's runtime is tested on Linux (WebKitGTK)"),
    pytest.mark.timeout(60),
]


def missing(what: str) -> None:
    """Skip for a missing part, fail under CI=true (as tests/parts.py does)."""
    reason = f"{what} is not installed (install it with: {INSTALL})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def start_xvfb(width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb on a free display, once it accepts connections (``-displayfd``)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        [require("Xvfb"), "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    # Read up to the newline: Xvfb writes the number and "\n" apart, and dies if the pipe closed between.
    data = b""
    try:
        while not data.endswith(b"\n"):
            if not select.select([read], [], [], 10)[0]:
                server.kill()
                pytest.fail("Xvfb did not report a display within 10 s")
            chunk = os.read(read, 64)
            if not chunk:
                pytest.fail(f"Xvfb exited with {server.wait()} before it had a display")
            data += chunk
    finally:
        os.close(read)
    return server, f":{data.decode().strip()}"


def report_server() -> tuple[ThreadingHTTPServer, queue.Queue[dict[str, Any]]]:
    """A loopback endpoint: each POSTed JSON body goes on the queue."""
    reports: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reports.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, reports


def bundle_page(dist: Path, report_url: str) -> None:
    """page/ with the transport and the real plugin bundled by esbuild, into `dist`."""
    esbuild = CLIENT / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        missing("client_js's devDependencies (esbuild, @tauri-apps/plugin-shell: npm ci in client_js)")
    dist.mkdir()
    shutil.copy(HERE / "page" / "index.html", dist / "index.html")
    subprocess.run(
        [str(esbuild), str(HERE / "page" / "main.js"), "--bundle", "--format=esm", "--log-level=warning",
         f"--define:REPORT_URL={json.dumps(report_url)}", f"--outfile={dist / 'main.js'}"],
        env={**os.environ, "NODE_PATH": str(CLIENT / "node_modules")},
        check=True,
    )


def app_interpreter(root: Path) -> Path:
    """A copy of this Python (``venv --copies``) seeing this environment's packages, with the
    sidecar beside it: Tauri runs a sidecar from the running executable's folder, under the
    last part of its externalBin entry (`binaries/bridge-host` -> `bridge-host`)."""
    venv.create(root, symlinks=False, with_pip=False)
    python = root / "bin" / "python"
    purelib = Path(sysconfig.get_paths(vars={"base": str(root), "platbase": str(root)})["purelib"])
    (purelib / "bridge-test-env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    sidecar = root / "bin" / "bridge-host"
    sidecar.write_text(
        f"#!{sys.executable}\n"
        "# Stands in for the frozen bundle: the entry point `bridge bundle` freezes, serving sidecar_app.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from bridge.bundle import frozen_main\n"
        "sys.exit(frozen_main('sidecar_app:app'))\n"
    )
    sidecar.chmod(0o755)
    return python


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running(program: Path) -> list[int]:
    """Pids of the processes running `program` (a script: its path is in their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(program).encode() in argv:
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the app once; the page's reports, the sidecars' pids and what was left running."""
    require("Xvfb")
    if ctypes.util.find_library("webkit2gtk-4.1") is None:
        missing("libwebkit2gtk-4.1-0")
    pytest.importorskip("pytauri_wheel", reason="pytauri-wheel is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("tauri")
    server, reports = report_server()
    bundle_page(root / "dist", f"http://127.0.0.1:{server.server_address[1]}/")
    python = app_interpreter(root / "env")
    window = json.loads((SRC_TAURI / "tauri.conf.json").read_text())["app"]["windows"][0]
    xvfb, display = start_xvfb(window["width"], window["height"])
    config = {"build": {"devUrl": None, "frontendDist": str(root / "dist")}, "app": {"security": {"csp": None}}}
    started = time.monotonic()
    app = subprocess.Popen(
        [str(python), str(HERE / "tauri_app.py"), str(SRC_TAURI), json.dumps(config)],
        env={**os.environ, "DISPLAY": display, "NO_AT_BRIDGE": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    outcome: dict[str, Any] = {"steps": {}, "done": None}
    try:
        while outcome["done"] is None:
            if app.poll() is not None:
                output = app.stdout.read().decode(errors="replace")
                pytest.fail(f"the app exited with {app.returncode}:\n{output[:3000]}")
            if time.monotonic() - started > DEADLINE:
                pytest.fail(f"the page did not finish within {DEADLINE} s; steps so far: {list(outcome['steps'])}")
            try:
                report = reports.get(timeout=0.5)
            except queue.Empty:
                continue
            if "step" in report:
                outcome["steps"][report["step"]["name"]] = report["step"]
            if report.get("done"):
                outcome["done"] = report
        outcome["closed_alive"] = [pid for pid in outcome["done"]["pids"] if alive(pid)]
        from PIL import ImageGrab  # pytauri's own dependency

        SCREENSHOT.parent.mkdir(exist_ok=True)
        ImageGrab.grab(xdisplay=display).save(SCREENSHOT)
        # A pidfd of the sidecar left open, taken while it runs, is readable once it has ended.
        left_open = os.pidfd_open(outcome["done"]["leftOpen"])
        try:
            app.stdin.close()  # tauri_app.py exits through Tauri at EOF
            outcome["exit_code"] = app.wait(timeout=10)
            outcome["output"] = app.stdout.read().decode(errors="replace")
            outcome["left_open_ended"] = bool(select.select([left_open], [], [], 5)[0])
        finally:
            os.close(left_open)
        outcome["sidecars_running"] = [pid for pid in running(python.parent / "bridge-host") if alive(pid)]
        outcome["seconds"] = time.monotonic() - started
        yield outcome
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        app.stdout.close()
        xvfb.terminate()
        xvfb.wait()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", STEPS)
def test_step(run: dict[str, Any], name: str) -> None:
    assert run["done"].get("crashed") is None, run["done"]["crashed"]
    assert name in run["steps"], f"the page never ran {name!r}"
    step = run["steps"][name]
    assert step["ok"], step["detail"]


def test_every_step_ran_in_order(run: dict[str, Any]) -> None:
    assert [result["name"] for result in run["done"]["results"]] == list(STEPS)


def test_the_capability_fixed_the_args(run: dict[str, Any]) -> None:
    """The page asked for ['serve', 'other:app', '--debug']; the real plugin ran ['serve']."""
    assert run["steps"][STEPS[0]]["detail"]["argv"] == ["serve"]


def test_the_plugins_refusal(run: dict[str, Any]) -> None:
    """The message client_js/test-support/tauri-shell.mjs gives for it too."""
    assert run["steps"][STEPS[1]]["detail"]["message"] == (
        "could not spawn the bridge sidecar: sidecar not configured under "
        "`tauri.conf.json > bundle > externalBin`: binaries/elsewhere"
    )


def test_close_left_no_sidecar_behind(run: dict[str, Any]) -> None:
    """The three sidecars the page closed (two by `$/exit`, one killed) were gone before the app exited."""
    assert len(run["done"]["pids"]) == 3
    assert run["closed_alive"] == []


def test_the_apps_exit_ends_the_sidecar_left_open(run: dict[str, Any]) -> None:
    """Tauri's exit (RunEvent::Exit) makes the shell plugin kill the children it still has."""
    assert run["exit_code"] == 0, run["output"][:3000]
    assert run["left_open_ended"], "the sidecar left open outlived the app by 5 s"
    assert run["sidecars_running"] == [], "a sidecar outlived the app"


def test_screenshot_of_the_window(run: dict[str, Any]) -> None:
    from PIL import Image

    with Image.open(SCREENSHOT) as image:
        assert image.size == (760, 560)
        darkest, lightest = image.convert("L").getextrema()
        assert darkest < lightest, "the window is blank"
