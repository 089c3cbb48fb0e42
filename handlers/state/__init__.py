"""The built-in ``state`` plugin: named JSON documents, versioned by RFC 6902 patches, durable on SQLite."""
