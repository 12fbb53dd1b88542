"""The Socket.IO transport rules in process: the same-origin rule, bounded packets (JSON limits, attachment caps)."""

from __future__ import annotations

import pytest
from socketio import packet

from workspace.realtime import transport


def environ(host="example.com:8000", scheme="http", **extra):
    return {"HTTP_HOST": host, "wsgi.url_scheme": scheme, **extra}


@pytest.mark.parametrize(("origin", "env", "allowed"), [
    ("http://example.com:8000", environ(), True),
    ("HTTP://EXAMPLE.com:8000", environ(), True),
    ("http://example.com:8001", environ(), False),
    ("https://example.com:8000", environ(), False),
    ("http://example.com", environ("example.com:80"), True),  # default ports compare equal
    ("https://example.com", environ("example.com:443", "https"), True),
    ("http://evil.example", environ(), False),
    (None, environ(), False),
    ("null", environ(), False),
])
def test_same_origin_without_configured_origins(app, origin, env, allowed):
    app.config.update(CORS_ORIGINS=[], TRUSTED_PROXIES=0, BEHIND_TLS_PROXY=False)
    assert transport.allowed_origins(app)(origin, env) is allowed


def test_behind_proxies_the_forwarded_origin_counts_only_when_trusted(app):
    forwarded = environ("internal:8000", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="app.example.com")
    app.config.update(CORS_ORIGINS=[], TRUSTED_PROXIES=1, BEHIND_TLS_PROXY=False)
    assert transport.allowed_origins(app)("https://app.example.com", forwarded)
    app.config.update(TRUSTED_PROXIES=0)
    assert not transport.allowed_origins(app)("https://app.example.com", forwarded)
    app.config.update(BEHIND_TLS_PROXY=True)
    assert transport.request_origin(environ("app.example.com"), 0, True) == "https://app.example.com"


def test_configured_origins_are_passed_as_they_are(app):
    app.config.update(CORS_ORIGINS=["*"])
    assert transport.allowed_origins(app) == "*"
    app.config.update(CORS_ORIGINS=["https://a.example", "https://b.example"])
    assert transport.allowed_origins(app) == ["https://a.example", "https://b.example"]


@pytest.fixture
def bounded(app):
    app.config.update(SOCKET_MAX_ATTACHMENTS=2, SOCKET_MAX_ATTACHMENT_BYTES=10, JSON_MAX_DEPTH=8,
                      JSON_MAX_INT_DIGITS=6)
    return transport.packet_class(app)


def test_an_event_within_the_limits_decodes(bounded):
    decoded = bounded(encoded_packet='2["join",{"project_id":1}]')
    assert decoded.data == ["join", {"project_id": 1}]


@pytest.mark.parametrize("payload", ['2["join",' + "[" * 20 + "]" * 20 + "]", '2["join",{"n":12345678901}]'])
def test_an_event_over_the_json_limits_becomes_a_refusal_the_server_can_answer(bounded, payload):
    decoded = bounded(encoded_packet=payload.replace("2[", "21[", 1))
    assert decoded.data[0] == transport.REFUSED_EVENT and decoded.id == 1


@pytest.mark.parametrize("encoded", ['2"just a string"', "2[]", "2[42]"])
def test_an_event_must_be_an_array_starting_with_its_name(bounded, encoded):
    with pytest.raises(ValueError):
        bounded(encoded_packet=encoded)


def test_attachments_are_capped_in_count_and_bytes(bounded):
    with pytest.raises(transport.TooManyAttachments) as many:
        bounded(encoded_packet='53-["x",{"_placeholder":true,"num":0}]')
    assert many.value.code == "too_many_attachments"
    two = bounded(encoded_packet='52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    two.add_attachment(b"12345")
    with pytest.raises(transport.TooManyAttachments) as big:
        two.add_attachment(b"123456")
    assert big.value.code == "payload_too_large"
    assert two.packet_type == packet.BINARY_EVENT
