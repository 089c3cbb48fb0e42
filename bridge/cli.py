"""The ``bridge`` command: ``serve`` an app on stdio, print its ``discover`` document."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING

from .settings import Settings

if TYPE_CHECKING:
    from .app import Bridge

DEFAULT_APP = "handlers.demo:app"


def load_app(spec: str) -> Bridge:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the working directory."""
    from .app import Bridge

    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py"):
        module_name = module_name[:-3].replace("/", ".").replace(os.sep, ".")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if callable(app) and not isinstance(app, Bridge):
        app = app()
    if not isinstance(app, Bridge):
        raise SystemExit(f"bridge: {spec} is not a Bridge app (got {type(app).__name__})")
    return app


def _parser() -> argparse.ArgumentParser:
    env = Settings.env_names()
    parser = argparse.ArgumentParser(prog="bridge", description="A JSON-RPC 2.0 sidecar host for desktop apps.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="serve an app on stdin/stdout")
    serve.add_argument("app", nargs="?", default=None,
                       help=f"module:attribute of a Bridge app (env BRIDGE_APP; default: built-in handlers, {DEFAULT_APP})")
    serve.add_argument("--framing", choices=["auto", "ndjson", "lsp"], help=f"message framing (env {env['framing']}; default auto)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"],
                       help=f"stderr log level (env {env['log_level']}; default info)")
    serve.add_argument("--debug", action="store_true", default=None,
                       help=f"log every call with its timing; tracebacks in error replies (env {env['debug']}=1)")
    serve.add_argument("--no-ready", dest="ready", action="store_false", default=None,
                       help=f"do not send the $/ready notification (env {env['ready']}=0)")
    serve.add_argument("--max-inflight", type=int, help=f"calls running at once; later ones queue (env {env['max_inflight']}; default 256)")
    serve.add_argument("--max-inflight-per-caller", type=int,
                       help=f"one caller's share of the call slots (env {env['max_inflight_per_caller']}; default half)")
    serve.add_argument("--max-queued", type=int,
                       help=f"calls read but not started before -32005 (env {env['max_queued']}; default 20000)")
    serve.add_argument("--max-queued-bytes", type=int,
                       help=f"bytes of calls read but not started (env {env['max_queued_bytes']}; default 64 MiB)")
    serve.add_argument("--loop-block-warning", type=float,
                       help=f"warn when the event loop is blocked this many seconds (env {env['loop_block_warning']}; "
                            "default 0.25, 0 off)")
    serve.add_argument("--no-audit", dest="audit", action="store_false", default=None,
                       help=f"keep no audit log (env {env['audit']}=0)")
    serve.add_argument("--audit-dir", help=f"where the audit log goes (env {env['audit_dir']}; default the user data dir)")
    serve.add_argument("--audit-max-bytes", type=int,
                       help=f"audit log size before it rotates (env {env['audit_max_bytes']}; default 10 MiB)")
    serve.add_argument("--audit-backups", type=int, help=f"rotated audit logs kept (env {env['audit_backups']}; default 3)")
    serve.add_argument("--audit-max-entry-bytes", type=int,
                       help=f"largest audit entry before fields are cut (env {env['audit_max_entry_bytes']}; default 64 KiB)")
    serve.add_argument("--bad-input-log-limit", type=int,
                       help=f"bad-input log lines per kind before summaries (env {env['bad_input_log_limit']}; default 5)")
    serve.add_argument("--bad-input-summary", type=float,
                       help=f"seconds between bad-input summaries (env {env['bad_input_summary']}; default 60)")
    serve.add_argument("--max-message-bytes", type=int, help=f"largest message accepted (env {env['max_message_bytes']}; default 32 MiB)")
    serve.add_argument("--max-header-bytes", type=int,
                       help=f"longest LSP header block (env {env['max_header_bytes']}; default 8192)")
    serve.add_argument("--max-batch", type=int, help=f"most entries in a batch array (env {env['max_batch']}; default 1000)")
    serve.add_argument("--max-threads", type=int,
                       help=f"worker threads for sync handlers (env {env['max_threads']}; default 40)")
    serve.add_argument("--metrics-interval", type=float,
                       help=f"seconds between $/metrics notifications; 0 is off (env {env['metrics_interval']}; default 0)")
    serve.add_argument("--stream-window", type=int,
                       help=f"chunks a stream may send before the caller grants more, when it asks for pacing "
                       f"without a window (env {env['stream_window']}; default 16)")
    serve.add_argument("--cache-dir", help=f"where cached replies persist (env {env['cache_dir']}; "
                       "default: the user cache directory, bridge/<app name>)")
    serve.add_argument("--cache-size", type=int,
                       help=f"bytes of cached replies kept on disk (env {env['cache_size']}; default 256 MiB)")
    serve.add_argument("--loop", choices=["auto", "asyncio", "uvloop"],
                       help=f"event loop; auto is uvloop where installed (env {env['loop']}; default auto)")
    serve.add_argument("--shutdown-grace", type=float, help=f"seconds in-flight calls get at shutdown (env {env['shutdown_grace']}; default 5)")

    discover = sub.add_parser("discover", help="print the app's OpenRPC document (installed plugins included)")
    discover.add_argument("app", nargs="?", default=None)
    for command in (serve, discover):
        command.add_argument("--plugin", dest="plugins", action="append", metavar="NAME",
                             help="mount this installed plugin (repeatable; default: every installed one; "
                             "env BRIDGE_PLUGINS, comma-separated)")
        command.add_argument("--no-plugins", action="store_true", default=None,
                             help="mount no installed plugins (env BRIDGE_PLUGINS=none)")
        command.add_argument("--config", help="a TOML file; [plugins.NAME] tables set plugin settings (env BRIDGE_CONFIG)")

    sub.add_parser("plugins", help="list the installed plugins, their versions and methods")

    bundle = sub.add_parser("bundle", help="freeze an app into one executable (PyInstaller) for Tauri or Electron",
                            description="Build APP with PyInstaller into an executable that behaves like "
                            "`bridge serve APP`, named NAME-TARGET_TRIPLE as Tauri's externalBin expects.")
    bundle.add_argument("app", help="module:attribute of a Bridge app")
    bundle.add_argument("--out", help="where the executable goes, e.g. src-tauri/binaries (default: dist, "
                        "or only the cache when --cache is given)")
    bundle.add_argument("--name", help="the sidecar's name, before the target triple (default: from the app's name)")
    bundle.add_argument("--target-triple", help="default: this host's, as `rustc -vV` prints it")
    mode = bundle.add_mutually_exclusive_group()
    mode.add_argument("--onefile", dest="mode", action="store_const", const="onefile",
                      help="a single file (what Tauri's externalBin takes); unpacks itself on every start (~1.5x)")
    mode.add_argument("--onedir", dest="mode", action="store_const", const="onedir",
                      help="a folder with the executable inside (the default; starts in ~1.2x the time of `bridge serve`)")
    bundle.add_argument("--compress", action="store_true",
                        help="zlib-compress a onefile bundle: about half the size, but inflated on every start "
                        "(~2.2x the module's start-up instead of ~1.5x); installers compress anyway")
    bundle.add_argument("--plugin", dest="plugins", action="append", metavar="NAME",
                        help="include this installed plugin (repeatable; default: every installed one)")
    bundle.add_argument("--no-plugins", action="store_true", help="include no installed plugins")
    bundle.add_argument("--hidden-import", action="append", default=[], metavar="MODULE",
                        help="a module the app imports by name (repeatable)")
    bundle.add_argument("--collect-submodules", action="append", default=[], metavar="PACKAGE",
                        help="include every module of PACKAGE (repeatable)")
    bundle.add_argument("--exclude-module", action="append", default=[], metavar="MODULE", help="leave MODULE out")
    bundle.add_argument("--pyinstaller-arg", action="append", default=[], metavar="ARG",
                        help="passed to PyInstaller as is (repeatable), e.g. --pyinstaller-arg=--icon=app.ico")
    bundle.add_argument("--cache", metavar="DIR", help="reuse the build of identical inputs from DIR (keyed by a "
                        "hash of the sources, options and installed versions)")
    bundle.add_argument("--json", action="store_true", help="print the result as JSON instead of the snippets")
    bundle.add_argument("--verbose", action="store_true", help="show PyInstaller's output")
    return parser


def _plugin_choice(args: argparse.Namespace) -> list[str] | None:
    """None for every installed plugin, else the names to mount ([] for none)."""
    if getattr(args, "no_plugins", None):
        return []
    if getattr(args, "plugins", None):
        return list(args.plugins)
    env = os.environ.get("BRIDGE_PLUGINS")
    if env is None or env.strip() == "":
        return None
    return [] if env.strip().lower() == "none" else [name.strip() for name in env.split(",") if name.strip()]


def _plugin_config(path: str | None) -> dict[str, dict[str, object]]:
    path = path or os.environ.get("BRIDGE_CONFIG")
    if not path:
        return {}
    import tomllib

    with open(path, "rb") as file:
        return dict(tomllib.load(file).get("plugins", {}))


def _list_plugins() -> int:
    from .plugins import discover_plugins

    found = discover_plugins()
    if not found:
        print("no plugins installed (entry-point group bridge.plugins)")
    for name, version, plugin in found:
        if isinstance(plugin, Exception):
            print(f"{name} {version}  FAILED: {type(plugin).__name__}: {plugin}")
        else:
            methods = ", ".join(f"{name}.{entry[1]}" for entry in plugin.entries)
            print(f"{name} {version}  {methods}")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    """``bridge bundle``: imported only here, so ``serve`` never loads it."""
    import json
    from pathlib import Path

    from .bundle import builder, config, inputs

    try:
        the_plan = inputs.plan(args.app, name=args.name, triple=args.target_triple,
                               mode=args.mode or inputs.DEFAULT_MODE, plugins=[] if args.no_plugins else args.plugins,
                               hidden_imports=args.hidden_import, collect=args.collect_submodules,
                               excludes=args.exclude_module, extra_args=args.pyinstaller_arg,
                               compress=args.compress)
    except ValueError as exc:
        raise SystemExit(f"bridge bundle: {exc}") from None
    out = Path(args.out) if args.out else (None if args.cache else Path("dist"))
    result = builder.build(the_plan, out, Path(args.cache).expanduser() if args.cache else None,
                           log=sys.stderr if args.verbose else None)
    print(json.dumps(result.to_dict()) if args.json else config.snippets(result, out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"bridge {__version__}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "plugins":
        return _list_plugins()
    if args.command == "bundle":
        return _bundle(args)
    spec = args.app or os.environ.get("BRIDGE_APP") or DEFAULT_APP
    app = load_app(spec)
    from .plugins import mount_installed

    only = _plugin_choice(args)
    if only != []:
        mount_installed(app, only, _plugin_config(args.config))
    if args.command == "discover":
        from .codec import dumps
        from .discovery import openrpc

        sys.stdout.buffer.write(dumps(openrpc(app)) + b"\n")
        return 0
    try:
        # every setting has a flag of its own name (tests/test_settings.py checks it)
        settings = Settings.from_env(**{name: getattr(args, name) for name in Settings.env_names()})
    except ValueError as exc:
        parser.error(str(exc))
    return app.serve(settings)
