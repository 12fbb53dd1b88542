"""PageArgs.load_query, the list views' shortcut past marshmallow: the same result as `load`, or no answer."""

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from workspace.schemas import PageArgs

PLAIN = ["", "page=1", "per_page=20", "page=3&per_page=100", "page=1000000&per_page=1", "page=007", "other=x&page=2",
         "page=2&page=abc"]
OTHER = ["page=0", "page=1000001", "per_page=0", "per_page=101", "per_page=-1", "page=abc", "page=", "page=+5",
         "page= 5", "page=1_0", "page=1.0", "page=\uff15", "page=abc&page=2", "per_page=99999999999999999999999"]


def _query(text: str) -> MultiDict:
    return MultiDict(pair.split("=", 1) for pair in text.split("&") if pair)


def _load(text: str):
    try:
        return PageArgs().load({k: v for k, v in reversed(list(_query(text).items(multi=True)))})
    except ValidationError as exc:
        return exc.messages


@pytest.mark.parametrize("text", PLAIN)
def test_plain_queries_read_as_load_reads_them(text):
    loaded = PageArgs().load_query(_query(text))
    assert loaded is not None and loaded == _load(text)


@pytest.mark.parametrize("text", OTHER)
def test_any_other_query_is_left_to_load(text):
    assert PageArgs().load_query(_query(text)) is None
