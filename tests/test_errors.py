"""bridge/errors.py: the codes as one namespace (``ErrorCode``) and as plain ints, and BridgeError."""

import orjson
import pytest

from bridge import errors
from bridge.errors import MESSAGES, BridgeError, ErrorCode


def test_each_plain_constant_is_its_members_number() -> None:
    for code in ErrorCode:
        plain = getattr(errors, code.name)
        assert type(plain) is int and plain == code.value, code.name
        assert MESSAGES[plain] == code.message
    assert len(MESSAGES) == len(ErrorCode)  # no two members share a number


def test_a_member_goes_on_the_wire_as_its_number() -> None:
    error = BridgeError(ErrorCode.RATE_LIMITED, data={"retry_after": 1})
    assert type(error.code) is int and error.message == "Rate limited"
    assert orjson.loads(orjson.dumps(error.to_dict())) == {"code": -32003, "message": "Rate limited",
                                                          "data": {"retry_after": 1}}


@pytest.mark.parametrize("code", [True, 1.0, "-32602", None])
def test_a_code_that_is_not_an_int_is_refused(code: object) -> None:
    with pytest.raises(TypeError):
        BridgeError(code)  # type: ignore[arg-type]


def test_reserved_codes_bridge_does_not_define_are_refused_and_others_allowed() -> None:
    with pytest.raises(ValueError, match="reserved"):
        BridgeError(-32050)
    assert BridgeError(4001, "app error").to_dict() == {"code": 4001, "message": "app error"}
