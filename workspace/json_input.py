"""Untrusted JSON in, within limits: nesting depth and number size, for REST bodies and socket payloads alike.

Python's parser recurses once per nesting level (about 1,000 levels end in a RecursionError) and turns integers of
more than 4,300 digits into a ValueError: both used to escape as 500s. Here deep nesting is a 400 `invalid_json` and
an integer longer than the limit (or a number that overflows to infinity) a 422 `number_too_large`, decided while
parsing, before any of it is built. REST bodies go through `loads` (installed as flask-smorest's argument parser by
`init_app`); a transport that decodes JSON itself (Socket.IO) calls `check` on the decoded value, or `loads`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import flask_smorest
from flask import current_app, has_app_context, request
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from .errors import ApiError, ValidationFailed

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_INT_DIGITS = 64
_BITS_PER_DIGIT = math.log2(10)


class InvalidJson(ApiError):
    status, code = 400, "invalid_json"


def _limits(max_depth: int | None, max_int_digits: int | None) -> tuple[int, int]:
    config = current_app.config if has_app_context() else {}
    return (max_depth or config.get("JSON_MAX_DEPTH", DEFAULT_MAX_DEPTH),
            max_int_digits or config.get("JSON_MAX_INT_DIGITS", DEFAULT_MAX_INT_DIGITS))


def _too_large(what: str, max_int_digits: int) -> ValidationFailed:
    return ValidationFailed(f"{what} is too large: integers may have at most {max_int_digits} digits.",
                            code="number_too_large", details={"max_int_digits": max_int_digits})


def loads(data: bytes | str, *, max_depth: int | None = None, max_int_digits: int | None = None) -> Any:
    """Parse untrusted JSON; InvalidJson (400) for malformed or too deeply nested, ValidationFailed (422) for a
    number beyond the limit."""
    max_depth, max_int_digits = _limits(max_depth, max_int_digits)

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise _too_large("A number", max_int_digits)
        return int(digits)

    def parse_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise _too_large("A number", max_int_digits)
        return value

    def parse_constant(name: str):
        raise InvalidJson(f"{name} is not valid JSON.")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError as exc:
        raise InvalidJson(f"The JSON is nested too deeply (at most {max_depth} levels).") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidJson("The request body is not valid JSON.") from exc
    _check_depth(value, max_depth)
    return value


def check(value: Any, *, max_depth: int | None = None, max_int_digits: int | None = None) -> None:
    """Apply the same limits to an already decoded value (a socket payload); raises as `loads` does."""
    max_depth, max_int_digits = _limits(max_depth, max_int_digits)
    for item in _check_depth(value, max_depth):
        huge_int = isinstance(item, int) and item.bit_length() > max_int_digits * _BITS_PER_DIGIT
        if huge_int or (isinstance(item, float) and not math.isfinite(item)):
            raise _too_large("A number", max_int_digits)


def _check_depth(value: Any, max_depth: int) -> list[Any]:
    """Every scalar inside `value`, walked without recursion; InvalidJson past `max_depth` levels of nesting."""
    scalars, stack = [], [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidJson(f"The JSON is nested too deeply (at most {max_depth} levels).",
                                  details={"max_depth": max_depth})
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        else:
            scalars.append(item)
    return scalars


class LimitedJsonParser(FlaskParser):
    """webargs' parser for flask-smorest, reading JSON bodies through `loads`; a query schema with a `load_query`
    shortcut (PageArgs) reads the plain queries it accepts without webargs' and marshmallow's load."""

    def parse(self, argmap, req=None, *, location=None, **kwargs) -> Any:
        shortcut = getattr(argmap, "load_query", None)
        if shortcut is not None and location == "query" and not kwargs.get("validate"):
            loaded = shortcut((req or request).args)
            if loaded is not None:
                return loaded
        return super().parse(argmap, req, location=location, **kwargs)

    def _raw_load_json(self, req) -> Any:
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        return loads(data) if data.strip() else core.missing


# Every `@bp.arguments` body of every flask-smorest blueprint is read through `loads`. flask-smorest's hook is the
# ARGUMENTS_PARSER class attribute, read when a view is decorated: so this runs at import, and the package imports
# this module before any route module.
flask_smorest.Blueprint.ARGUMENTS_PARSER = LimitedJsonParser()
