"""Entry point of the frozen sidecar: `bridge-host serve [module:app]`, like `python -m bridge`.

Build it into src-tauri/binaries/ with the target triple Tauri expects, e.g. on Linux x86-64:

    pyinstaller --onefile --name bridge-host-x86_64-unknown-linux-gnu \
        --hidden-import handlers.demo --distpath src-tauri/binaries sidecar/bridge_host.py
"""

import sys

from bridge.cli import main

sys.exit(main())
