"""The built-in plugins (``--plugin system|fs|services|state|collab``) and the demo app
(``bridge.builtins.demo:app``), imported by this name only, so an app's own ``handlers`` or
``state`` module cannot shadow them.

Their sources live in the repository's top-level ``handlers/`` folder. A wheel installs them here
(pyproject.toml maps ``handlers/`` onto ``bridge/builtins/``), and a bundle freezes them under this
name; in a checkout (the editable install) this file is alone here and ``__path__`` reaches
``handlers/``. One ``__init__.py`` (this one; ``handlers/`` has none), so the two cannot disagree.
"""

import os

_here = os.path.dirname(os.path.abspath(__file__))
_checkout = os.path.join(os.path.dirname(os.path.dirname(_here)), "handlers")
if not os.path.exists(os.path.join(_here, "system.py")) and os.path.isfile(os.path.join(_checkout, "system.py")):
    __path__.append(_checkout)
