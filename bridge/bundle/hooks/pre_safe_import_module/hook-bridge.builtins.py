"""``bridge.builtins`` reaches the repository's ``handlers/`` through ``__path__`` when bridge
runs from a checkout; PyInstaller reads packages without running them, so it is told here."""

import bridge.builtins


def pre_safe_import_module(api):  # type: ignore[no-untyped-def]
    for folder in bridge.builtins.__path__[1:]:
        api.append_package_path(folder)
