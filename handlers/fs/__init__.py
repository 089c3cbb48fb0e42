"""The ``fs`` plugin: watch files under allowed roots and push debounced, merged change batches."""
