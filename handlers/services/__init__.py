"""The ``services`` plugin: supervise the app's own child processes (restart, health, logs)."""
