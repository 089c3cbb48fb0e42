"""bridge/__init__.py: what an app may import is listed once, sorted, and every name resolves."""

import bridge


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert bridge.__all__ == sorted(bridge.__all__)
    for name in bridge.__all__:
        assert getattr(bridge, name) is not None, name


def test_every_error_code_is_exported() -> None:
    from bridge import errors

    codes = {name for name in dir(errors)
             if name.isupper() and isinstance(getattr(errors, name), int) and getattr(errors, name) in errors.MESSAGES}
    assert codes <= set(bridge.__all__), codes - set(bridge.__all__)
