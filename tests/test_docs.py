"""What the README says of the API stays true of it."""

from __future__ import annotations

import re
from pathlib import Path

from bridge import Context

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_lists_every_public_attribute_of_context() -> None:
    table = README[README.index("| attribute | what |", README.index("gets the call's context, all of it")):]
    table = table[:table.index("\n\n")]
    listed = {re.match(r"\w+", name).group(0) for name in re.findall(r"`([a-z_]+(?:\([^`]*\))?)`", table)}
    public = {name for name in dir(Context) if not name.startswith("_")} - {"connection"}  # connection: private API
    assert public <= listed, f"the README's Context table lacks {sorted(public - listed)}"
