"""A peer to compare with: python-lsp-jsonrpc's stream reader/writer and Endpoint, LSP framing.

It sends no `$/ready`; the benchmark times its start-up as the first reply instead.
"""

import sys

from pylsp_jsonrpc.endpoint import Endpoint
from pylsp_jsonrpc.streams import JsonRpcStreamReader, JsonRpcStreamWriter


def main() -> None:
    reader = JsonRpcStreamReader(sys.stdin.buffer)
    writer = JsonRpcStreamWriter(sys.stdout.buffer)
    endpoint = Endpoint({"echo": lambda params: params.get("value")}, writer.write)
    reader.listen(endpoint.consume)
    endpoint.shutdown()


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
