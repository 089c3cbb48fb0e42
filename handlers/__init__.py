"""Built-in handler plugins served by ``python -m bridge serve`` when no app is named."""
