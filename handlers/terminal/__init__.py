"""The built-in ``terminal`` plugin: programs on real pseudo-terminals, streamed to watchers."""
