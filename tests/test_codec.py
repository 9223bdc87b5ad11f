"""``decode`` of the plain JSON scalars a step returns: the value as it is when it has the
declared type, a clear error when it has another (a bool is not an int, an int is not a bool)."""

from __future__ import annotations

import pytest

from zart_django.codec import decode
from zart_django.errors import PayloadError


@pytest.mark.parametrize(
    ("data", "tp", "expected"),
    [(3, int, 3), (True, bool, True), ("x", str, "x"), (3, float, 3.0), (2.5, float, 2.5)],
)
def test_a_scalar_of_the_declared_type_comes_back_as_it_is(data, tp, expected):
    value = decode(data, tp, "result")
    assert value == expected and type(value) is tp


@pytest.mark.parametrize(
    ("data", "tp", "message"),
    [
        (True, int, "expected an integer, got"),
        (1, bool, "expected true or false"),
        (3, str, "expected a string"),
        ("3", int, "expected an integer"),
        (False, float, "expected a number"),
    ],
)
def test_a_scalar_of_another_type_is_refused_saying_where(data, tp, message):
    with pytest.raises(PayloadError, match=f"result of step 'tick': {message}"):
        decode(data, tp, "result of step 'tick'")
