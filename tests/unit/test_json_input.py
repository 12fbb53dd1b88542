"""The JSON limits as a function (workspace.json_input): what the socket layer calls on decoded payloads."""

import pytest

from workspace import json_input
from workspace.errors import ValidationFailed


def nested(levels: int):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("value", [{"a": [1, 2.5, "x", None, True]}, nested(64), 10**63, -(10**63), 1e308])
def test_values_within_the_limits_pass(value):
    json_input.check(value)
    assert json_input.loads(__import__("json").dumps(value)) == value


@pytest.mark.parametrize("value", [nested(65), {"a": nested(64)}, nested(5000)])
def test_deep_values_are_invalid_json(value):
    with pytest.raises(json_input.InvalidJson) as refused:
        json_input.check(value)
    assert refused.value.status == 400 and refused.value.code == "invalid_json"


@pytest.mark.parametrize("value", [10**80, [{"n": -(10**100)}], float("inf"), float("nan")])
def test_huge_numbers_are_refused(value):
    with pytest.raises(ValidationFailed) as refused:
        json_input.check(value)
    assert refused.value.status == 422 and refused.value.code == "number_too_large"


def test_limits_can_be_given():
    json_input.check(nested(10), max_depth=10)
    with pytest.raises(json_input.InvalidJson):
        json_input.loads("[[[1]]]", max_depth=2)
    with pytest.raises(ValidationFailed):
        json_input.loads("123456", max_int_digits=5)
