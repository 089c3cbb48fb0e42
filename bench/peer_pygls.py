"""A second peer: pygls's generic JSON-RPC server (asyncio), LSP framing.

Runs from its own venv (run.mjs makes one under the temp dir); it sends no `$/ready`.
"""

from typing import Any

from pygls.protocol import JsonRPCProtocol, default_converter
from pygls.server import JsonRPCServer

server = JsonRPCServer(protocol_cls=JsonRPCProtocol, converter_factory=default_converter)


@server.feature("echo")
def echo(params: Any) -> Any:
    # pygls hands params over as a namedtuple-like Object.
    return getattr(params, "value", None)


if __name__ == "__main__":
    server.start_io()
