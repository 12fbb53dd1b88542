"""The WSGI layers outside Flask: one yield per request, and only /socket.io through Socket.IO's layers."""

from __future__ import annotations

import inspect

from workspace import fair_share
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
        layer = vars(layer).get("app") or vars(layer).get("wsgi_app")
        layer = getattr(layer, "__self__", layer)  # a bound __call__ (fair_share.flatten)
    assert isinstance(layer, SplitByPath) and layer.prefix == "/socket.io"


class Layer:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def test_flatten_calls_each_inner_layer_through_its_bound_call(app):
    """Calling an instance recurses into a new C-level interpreter loop: every idle websocket's green thread parks
    under the chain with that C stack saved (fair_share.flatten)."""
    hops, layer = [], app.wsgi_app
    while type(layer).__module__.startswith("workspace."):  # down the Socket.IO side of the split
        inner = vars(layer).get("app") or vars(layer).get("wsgi_app") or vars(layer).get("matching")
        hops.append(inner)
        layer = getattr(inner, "__self__", None)
    assert len(hops) >= 4 and all(inspect.ismethod(hop) for hop in hops), hops
    assert type(layer).__module__.startswith("flask_socketio")  # the library's middleware: bound as well
    calls = []
    wrapped = fair_share.flatten(YieldBetweenRequests(YieldBetweenRequests(app_named("inner", calls), calls.append),
                                                      calls.append))
    assert inspect.ismethod(wrapped.app) and inspect.isfunction(wrapped.app.__self__.app)  # functions stay
    assert wrapped({"PATH_INFO": "/x"}, None) == [b"inner"] and calls == [0, 0, ("inner", "/x")]
    foreign = Layer(Layer(app_named("inner", calls)))  # layers of other packages are not touched
    assert fair_share.flatten(foreign).app.__class__ is Layer
