"""Adapters that let handlers written for other JSON-RPC libraries run on bridge."""
