"""The WSGI layers outside Flask: one yield per request, and only /socket.io through Socket.IO's layers."""

from __future__ import annotations

from workspace.fair_share import SplitByPath, YieldBetweenRequests


def app_named(name, calls):
    def app(environ, start_response):
        calls.append((name, environ["PATH_INFO"]))
        return [name.encode()]
    return app


def test_split_by_path_sends_only_the_prefix_to_the_socket_layers():
    calls = []
    split = SplitByPath("/socket.io", app_named("sockets", calls), app_named("flask", calls))
    for path in ("/socket.io/", "/socket.io/?EIO=4", "/healthz", "/api/v1/socket.io", "", "/socket"):
        split({"PATH_INFO": path}, None)
    assert calls == [("sockets", "/socket.io/"), ("sockets", "/socket.io/?EIO=4"), ("flask", "/healthz"),
                     ("flask", "/api/v1/socket.io"), ("flask", ""), ("flask", "/socket")]


def test_every_request_yields_once_before_it_is_served():
    order = []
    app = YieldBetweenRequests(lambda environ, start_response: order.append("served") or [b""],
                               lambda seconds: order.append(("yield", seconds)))
    app({}, None)
    app({}, None)
    assert order == [("yield", 0), "served", ("yield", 0), "served"]


def test_the_factory_wraps_the_app_in_both(app):
    outer = app.wsgi_app
    assert isinstance(outer, YieldBetweenRequests)
    layer = outer
    while layer is not None and not isinstance(layer, SplitByPath):
        layer = getattr(layer, "app", None) or getattr(layer, "wsgi_app", None)
    assert isinstance(layer, SplitByPath) and layer.prefix == "/socket.io"
