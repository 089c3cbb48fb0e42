"""The ``bridge`` command: ``serve`` an app on stdio, print its ``discover`` document."""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, get_args

from .loading import AppLoadError, load_app
from .settings import Settings

if TYPE_CHECKING:
    from .app import Bridge

DEMO_APP = "bridge.builtins.demo:app"


def _add_setting_flag(parser: argparse.ArgumentParser, option: Any) -> None:
    """One flag per setting, its help from the setting's metadata (bridge/settings.py)."""
    meta = option.metadata
    flag = meta["flag"] or "--" + option.name.replace("_", "-")
    default = meta["default_text"] or option.default
    if isinstance(option.default, bool):
        action = "store_false" if flag.startswith("--no-") else "store_true"
        env = f"{meta['env']}={'0' if action == 'store_false' else '1'}"
        parser.add_argument(flag, dest=option.name, action=action, default=None, help=f"{meta['help']} (env {env})")
        return
    choices = meta["choices"] or get_args(_hints()[option.name]) or None
    kind: Any = _size if meta["size"] else type(option.default)
    units = "; bytes, or with a unit: 32MiB, 1GB" if meta["size"] else ""
    parser.add_argument(flag, dest=option.name, type=kind, choices=choices,
                        help=f"{meta['help']} (env {meta['env']}; default {default}{units})")


def _size(text: str) -> int:
    from .settings import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.HelpFormatter):
    """argparse's, its width read as ``shutil.get_terminal_size`` does but without importing
    ``shutil`` (and its zlib, bz2 and lzma: ~1.5 ms of a host's start-up, where a formatter is
    made for every flag, help or not)."""

    def __init__(self, prog: str) -> None:
        try:
            width = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            width = 0
        if width <= 0:
            try:
                width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                width = 0
        super().__init__(prog, width=(width or 80) - 2)


@functools.cache
def _hints() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(Settings)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``command``, only that command's arguments are added (the others
    are listed, for help and errors): ``serve`` builds 31 arguments, not every command's 61."""
    parser = argparse.ArgumentParser(prog="bridge", description="A JSON-RPC 2.0 sidecar host for desktop apps.",
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="store_true",
                        help="print the version (and whether the hot path is compiled) and exit")
    sub = parser.add_subparsers(dest="command",
                                parser_class=functools.partial(argparse.ArgumentParser, formatter_class=_Formatter))

    def wanted(name: str) -> bool:
        return command is None or command == name

    serve = sub.add_parser("serve", help="serve an app on stdin/stdout", usage="%(prog)s [options] APP")
    if wanted("serve"):
        for option in Settings.options():
            _add_setting_flag(serve, option)

    discover = sub.add_parser("discover", help="print the app's OpenRPC document (installed plugins included)")
    types = sub.add_parser("types", help="print TypeScript declarations of the app's methods and events "
                           "(`bridge types app:app > bridge-api.d.ts`), for the JS client's type parameter")
    if wanted("types"):
        types.add_argument("--window", nargs="?", const="bridge", metavar="NAME",
                           help="also declare window.NAME (default bridge) as the Electron preload's RendererBridge<Api>")
    for name, command_parser in (("serve", serve), ("discover", discover), ("types", types)):
        if not wanted(name):
            continue
        command_parser.add_argument("app", nargs="?", default=None, metavar="APP",
                                    help=f"module:attribute of a Bridge app, e.g. myapp:app (env BRIDGE_APP); "
                                    f"{DEMO_APP} is the built-in demo")
        command_parser.set_defaults(parser=command_parser)
        command_parser.add_argument("--plugin", dest="plugins", action="append", metavar="NAME",
                                    help="mount this installed plugin (repeatable; default: every installed one; "
                                    "env BRIDGE_PLUGINS, comma-separated)")
        command_parser.add_argument("--no-plugins", action="store_true", default=None,
                                    help="mount no installed plugins (env BRIDGE_PLUGINS=none)")
        command_parser.add_argument("--config", help="a TOML file; [plugins.NAME] tables set plugin settings "
                                    "(env BRIDGE_CONFIG)")

    sub.add_parser("plugins", help="list the built-in and installed plugins, their versions and methods")

    cache = sub.add_parser("cache", help="the app's persistent reply cache")
    if wanted("cache"):
        _cache_arguments(cache)
    bundle = sub.add_parser("bundle", help="freeze an app into one executable (PyInstaller) for Tauri or Electron",
                            description="Build APP with PyInstaller into an executable that behaves like "
                            "`bridge serve APP`, named NAME-TARGET_TRIPLE as Tauri's externalBin expects.")
    if wanted("bundle"):
        _bundle_arguments(bundle)
    return parser


def _cache_arguments(cache: argparse.ArgumentParser) -> None:
    cache.add_argument("action", choices=["clear", "where"],
                       help="clear: drop every cached reply; where: print the cache directory")
    cache.add_argument("app", nargs="?", default=None, metavar="APP",
                       help="module:attribute of the Bridge app whose cache it is (env BRIDGE_APP)")
    cache.add_argument("--cache-dir", help="the cache directory, if the app is served with one "
                       "(env BRIDGE_CACHE_DIR; default: the user cache directory, bridge/<app name>)")
    cache.add_argument("--cache-redis", metavar="URL", help="the Redis the app's hosts share replies through, "
                       "if any (env BRIDGE_CACHE_REDIS): clear empties the app's part of it too")
    cache.set_defaults(parser=cache)


def _bundle_arguments(bundle: argparse.ArgumentParser) -> None:
    bundle.add_argument("app", help="module:attribute of a Bridge app")
    bundle.add_argument("--out", help="where the executable goes, e.g. src-tauri/binaries (default: dist, "
                        "or only the cache when --cache is given)")
    bundle.add_argument("--name", help="the sidecar's name, before the target triple (default: from the app's name)")
    bundle.add_argument("--target-triple", help="default: this host's, as `rustc -vV` prints it")
    mode = bundle.add_mutually_exclusive_group()
    mode.add_argument("--onefile", dest="mode", action="store_const", const="onefile",
                      help="a single file (what Tauri's externalBin takes); unpacks itself on every start "
                      "(~1.7x the time of `bridge serve` to $/ready; bench/README.md)")
    mode.add_argument("--onedir", dest="mode", action="store_const", const="onedir",
                      help="a folder with the executable inside (the default; starts in ~1.2x the time of `bridge serve`)")
    bundle.add_argument("--compress", action="store_true",
                        help="zlib-compress a onefile bundle: about half the size, but inflated on every start "
                        "(~2.2x the module's start-up instead of ~1.7x); installers compress anyway")
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
    bundle.add_argument("--compiled", action="store_true",
                        help="freeze bridge with its hot path compiled by mypyc (~35%% less CPU per call; needs "
                        "pip install 'bridge-sidecar[compile]' and a C compiler; the compiled copy is cached)")
    bundle.add_argument("--json", action="store_true", help="print the result as JSON instead of the snippets")
    bundle.add_argument("--verbose", action="store_true", help="show PyInstaller's output")


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
    """The built-in plugins (mounted with --plugin NAME), then the installed ones (mounted by default)."""
    import importlib

    from . import __version__
    from .plugins import BUILTIN, discover_plugins

    def line(name: str, version: str, plugin: Any, where: str) -> str:
        if isinstance(plugin, Exception):
            return f"{name} {version} ({where})  FAILED: {type(plugin).__name__}: {plugin}"
        methods = ", ".join(f"{name}.{entry[1]}" for entry in plugin.entries)
        return f"{name} {version} ({where})  {methods}"

    print("built-in (mount with --plugin NAME):")
    for name, target in BUILTIN.items():
        module, _, attr = target.partition(":")
        try:
            plugin: Any = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # a built-in whose dependency is missing: say so, list the rest
            plugin = exc
        print("  " + line(name, __version__, plugin, "built-in"))
    found = discover_plugins()
    print("installed (entry-point group bridge.plugins; mounted unless --plugin or --no-plugins):")
    if not found:
        print("  none")
    for name, version, plugin in found:
        print("  " + line(name, version, plugin, "installed"))
    return 0


def _cache(args: argparse.Namespace) -> int:
    """``bridge cache clear|where APP``: the directory ``serve`` would keep APP's replies in (and,
    with ``--cache-redis``, the app's part of the shared Redis)."""
    from .cache import CacheStore, default_directory

    directory = args.cache_dir or os.environ.get("BRIDGE_CACHE_DIR")
    shared = args.cache_redis or os.environ.get("BRIDGE_CACHE_REDIS")
    name = None
    if not directory or shared:
        spec = args.app or os.environ.get("BRIDGE_APP")
        if not spec:
            args.parser.error("name the app (its name picks the directory and its Redis keys), or give --cache-dir")
        try:
            name = load_app(spec).name
        except AppLoadError as exc:
            raise SystemExit(f"bridge: {exc}") from None
        directory = directory or str(default_directory(name))
    if args.action == "where":
        print(directory)
        if shared and name is not None:
            from .cache_redis import namespace
            from .redis_url import redact

            print(f"{redact(shared)} {namespace(name)}:*")
        return 0
    if shared and name is not None:
        import asyncio

        from .cache_redis import clear
        from .redis_url import redact

        try:
            keys = asyncio.run(clear(shared, name))
        except Exception as exc:  # redis-py's errors, a bad URL: said plainly, no traceback
            raise SystemExit(f"bridge: cannot clear the shared cache at {redact(shared)}: {exc}") from None
        print(f"cleared {keys} shared cache key{'' if keys == 1 else 's'} of {name} from {redact(shared)}")
    if not os.path.isdir(directory):
        print(f"nothing cached in {directory}")
        return 0
    store = CacheStore(directory, Settings().cache_size)
    try:
        count = store.clear()
    finally:
        store.close()
    print(f"cleared {count} cached repl{'y' if count == 1 else 'ies'} from {directory}")
    return 0


def _bundle(args: argparse.Namespace, argv: list[str]) -> int:
    """``bridge bundle``: imported only here, so ``serve`` never loads it."""
    import json
    from pathlib import Path

    from .bundle import builder, config, inputs
    from .connection import COMPILED

    if args.compiled and not COMPILED:
        return builder.build_compiled(argv, Path(args.cache).expanduser() if args.cache else None)
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


@contextmanager
def _collection_off() -> Iterator[None]:
    """Garbage collection off while start-up loads what lives as long as the process (the
    host's modules, the app's definition), all frozen after, so no collection walks it again:
    collecting meanwhile only costs (a quarter of registering 10,000 handlers; ~1.5 ms of the
    echo app's start)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with _collection_off():
        # only the command given is built: the first word that is not an option (the top level takes no values)
        parser = _parser(next((arg for arg in argv if not arg.startswith("-")), None))
        args = parser.parse_args(argv)
        if args.command in ("serve", "discover", "types"):
            app = _load(args)
            if args.command == "serve":
                from . import server  # noqa: F401 (its imports too, while collection is off)
    if args.version:
        from . import __version__
        from .connection import COMPILED

        print(f"bridge {__version__}" + (" (compiled)" if COMPILED else ""))
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "plugins":
        return _list_plugins()
    if args.command == "bundle":
        return _bundle(args, argv)
    if args.command == "cache":
        return _cache(args)
    if args.command == "discover":
        from .codec import dumps
        from .discovery import openrpc

        sys.stdout.buffer.write(dumps(openrpc(app)) + b"\n")
        return 0
    if args.command == "types":
        from .discovery import openrpc
        from .typegen import typescript

        try:
            text = typescript(openrpc(app), window=args.window)
        except ValueError as exc:
            args.parser.error(str(exc))
        sys.stdout.buffer.write(text.encode())
        return 0
    try:
        # every setting has a flag of its own name (tests/test_settings.py checks it)
        settings = Settings.from_env(**{name: getattr(args, name) for name in Settings.env_names()})
    except ValueError as exc:
        parser.error(str(exc))
    return app.serve(settings)


def _load(args: argparse.Namespace) -> Bridge:
    """The app ``serve``, ``discover`` and ``types`` name, with the installed plugins chosen mounted."""
    spec = args.app or os.environ.get("BRIDGE_APP")
    if not spec:
        args.parser.error(f"no app given: name one, as in `bridge {args.command} myapp:app`, or set BRIDGE_APP; "
                          f"the built-in demo is `bridge {args.command} {DEMO_APP}`")
    try:
        app = load_app(spec)
        from .plugins import mount_installed

        only = _plugin_choice(args)
        if only != []:
            mount_installed(app, only, _plugin_config(args.config))
    except AppLoadError as exc:
        raise SystemExit(f"bridge: {exc}") from None
    return app
