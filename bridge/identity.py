"""Who is calling: one participant id per caller, derived from ``$meta.caller`` in one place.

A trusted transport asserts the caller in the request's top-level ``$caller`` member (the
Electron helper does, for every renderer call, whatever the params shape); otherwise a client
may declare itself in ``$meta.caller``. Either is a string (the participant id itself), or an
object with ``participant`` (the id), else ``window`` (``{window, frame}`` gives
``"window:<id>"``), else ``id``. A call that declares nothing is the connection's own
participant, ``"connection:<n>"``. Plugins that tell callers apart (rate
limits per caller, file watches, collaboration sessions) all use this id.
"""

from __future__ import annotations

from typing import Any

#: Longer declared ids are replaced by a digest, so a participant id stays a small key.
MAX_PARTICIPANT_CHARS = 256


def participant_id(declared: Any, connection: int = 1) -> str:
    """The participant id of a call whose ``$meta.caller`` is ``declared``."""
    if type(declared) is dict:
        if isinstance(declared.get("participant"), (str, int)):
            declared = declared["participant"]
        elif isinstance(declared.get("window"), (str, int)):
            declared = f"window:{declared['window']}"
        elif isinstance(declared.get("id"), (str, int)):
            declared = declared["id"]
    if isinstance(declared, bool) or not isinstance(declared, (str, int)) or declared == "":
        return f"connection:{connection}"
    text = str(declared)
    if len(text) > MAX_PARTICIPANT_CHARS:
        import hashlib  # rare: not worth its import at start-up

        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text
