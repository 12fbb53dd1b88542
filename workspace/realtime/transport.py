"""Engine.IO / Socket.IO transport guards: who may open a session, how long it may stay anonymous, what a packet
may carry, and what a broken packet costs (one log line).

- Origins: `CORS_ORIGINS` `*` allows any, a list exactly those; unset (production's default) means same-origin only:
  the `Origin` must equal the scheme and host the request was addressed to. python-engineio would treat an empty
  list as "no check at all", so `allowed_origins` returns a callable for that case.
- An Engine.IO session that has not completed a Socket.IO CONNECT within SOCKET_CONNECT_TIMEOUT_SECONDS is closed
  (`HandshakeGuard`), so sessions without a token cannot hold slots forever.
- `packet_class` bounds every Socket.IO packet: at most SOCKET_MAX_ATTACHMENTS binary attachments and
  SOCKET_MAX_ATTACHMENT_BYTES in total (beyond: the session is closed), and its JSON is read by `json_input.loads`
  with the REST limits (JSON_MAX_DEPTH, JSON_MAX_INT_DIGITS). An event whose JSON breaks them still reaches the
  server as the event `REFUSED_EVENT`, so its ack says why, with REST's codes (`invalid_json` for depth,
  `number_too_large` for numbers), instead of leaving the client's callback hanging.
- A packet that cannot be decoded is dropped and logged once per session, one line, no traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from socketio import packet as sio_packet

from .. import json_input
from ..errors import ApiError, error_body
from ..extensions import socketio

log = logging.getLogger(__name__)

REFUSED_EVENT = "__payload_refused__"
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


# --- origins ---------------------------------------------------------------------------------------------------------
def _normalise(scheme: str, host: str) -> str:
    host = host.strip().lower()
    scheme = scheme.strip().lower()
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if port and DEFAULT_PORTS.get(scheme) == port:
        host = name
    return f"{scheme}://{host}"


def request_origin(environ: dict[str, Any], trusted_proxies: int, behind_tls: bool) -> str:
    """The origin (scheme://host) the request was addressed to; the proxy's X-Forwarded-* only when trusted."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST", "")
    if trusted_proxies:
        scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0]
        host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0]
    elif behind_tls:
        scheme = "https"
    return _normalise(scheme, host)


def allowed_origins(app: Flask) -> str | list[str] | Callable[[str, dict[str, Any]], bool]:
    """The `cors_allowed_origins` for python-engineio from CORS_ORIGINS (see the module docstring)."""
    origins = app.config["CORS_ORIGINS"]
    if "*" in origins:
        return "*"
    if origins:
        return list(origins)
    trusted, behind_tls = app.config["TRUSTED_PROXIES"], app.config["BEHIND_TLS_PROXY"]

    def same_origin(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin or "://" not in origin:
            return False
        scheme, _, host = origin.partition("://")
        return _normalise(scheme, host) == request_origin(environ, trusted, behind_tls)

    return same_origin


# --- packets ---------------------------------------------------------------------------------------------------------
class TooManyAttachments(ValueError):
    """Binary attachments over the count or size cap: the session is closed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BoundedJSON:
    """The `json` module of client packets: REST's limits on depth and numbers (`json_input.loads`)."""

    def __init__(self, max_depth: int, max_int_digits: int) -> None:
        self.max_depth = max_depth
        self.max_int_digits = max_int_digits

    def dumps(self, *args: Any, **kwargs: Any) -> str:
        return json.dumps(*args, **kwargs)

    def loads(self, text: str | bytes, **_: Any) -> Any:
        return json_input.loads(text, max_depth=self.max_depth, max_int_digits=self.max_int_digits)


def packet_class(app: Flask) -> type[sio_packet.Packet]:
    """A Socket.IO packet class bound to this app's limits (see the module docstring)."""
    config = app.config
    max_attachments = config["SOCKET_MAX_ATTACHMENTS"]
    max_bytes = config["SOCKET_MAX_ATTACHMENT_BYTES"]

    class BoundedPacket(sio_packet.Packet):
        json = BoundedJSON(config["JSON_MAX_DEPTH"], config["JSON_MAX_INT_DIGITS"])

        def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
            if encoded_packet is not None and self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT) and not (
                    isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
                # Refused here, where one log line covers it, not in the handler's task with a traceback (an empty
                # message is not even decoded by the library: it becomes an event without data).
                raise ValueError("an event must be a JSON array starting with the event name")

        def decode(self, encoded_packet):
            try:
                count = super().decode(encoded_packet)
            except ApiError as exc:
                if self.packet_type != sio_packet.EVENT:
                    raise ValueError(exc.message) from exc
                # The event's own name and arguments are what was refused; its ack id (parsed before the JSON)
                # still lets the server answer.
                self.data = [REFUSED_EVENT, exc]
                return 0
            if count > max_attachments:
                raise TooManyAttachments("too_many_attachments",
                                         f"{count} binary attachments announced; at most {max_attachments}.")
            self.attachment_bytes = 0
            return count

        def add_attachment(self, attachment):
            self.attachment_bytes = getattr(self, "attachment_bytes", 0) + len(attachment)
            if self.attachment_bytes > max_bytes:
                raise TooManyAttachments("payload_too_large", f"Binary attachments over {max_bytes} bytes.")
            return super().add_attachment(attachment)

    return BoundedPacket


# --- sessions --------------------------------------------------------------------------------------------------------
class HandshakeGuard:
    """Closes Engine.IO sessions that stay without a Socket.IO connection, and makes a broken packet cost one line.

    Wraps the Engine.IO `connect` and `message` handlers python-socketio registered on its server.
    """

    def __init__(self, app: Flask) -> None:
        self.server = socketio.server
        self.eio = self.server.eio
        self.timeout = app.config["SOCKET_CONNECT_TIMEOUT_SECONDS"]
        self.pending: dict[str, float] = {}  # eio sid -> deadline (monotonic)
        self.warned: set[str] = set()  # eio sids whose broken packet was logged already
        self.started = False
        self._connect = self.eio.handlers["connect"]
        self._message = self.eio.handlers["message"]
        self.eio.on("connect", self.on_connect)
        self.eio.on("message", self.on_message)

    def on_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        self.pending[eio_sid] = time.monotonic() + self.timeout
        if not self.started:
            self.started = True
            self.server.start_background_task(self._loop)
        return self._connect(eio_sid, environ)

    def on_message(self, eio_sid: str, data: Any) -> None:
        try:
            self._message(eio_sid, data)
        except TooManyAttachments as exc:
            self.server._binary_packet.pop(eio_sid, None)  # what was buffered so far goes with the session
            log.warning("socket closed: %s", exc.message, extra={"eio_sid": eio_sid, "code": exc.code})
            self.close(eio_sid)
        except Exception as exc:
            # Anything raised here is decoding or dispatch (handlers run in their own tasks): the client's fault.
            if eio_sid not in self.warned:
                self.warned.add(eio_sid)
                log.warning("malformed Socket.IO packet dropped (further ones from this session are not logged)",
                            extra={"eio_sid": eio_sid, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})

    def close(self, eio_sid: str) -> None:
        """Close a session without waiting for its queue to drain (`eio.disconnect` waits: a polling client that
        never polls again would block the caller for good)."""
        socket = self.eio.sockets.pop(eio_sid, None)
        if socket is not None:
            socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)

    def attached(self, eio_sid: str) -> bool:
        manager = self.server.manager
        for namespace in list(manager.get_namespaces()):
            sid = manager.sid_from_eio_sid(eio_sid, namespace)
            # A CONNECT still in its handler (pre-connected) counts: a slow token check must not lose the socket.
            if sid is not None and (manager.is_connected(sid, namespace) or manager.is_pre_connected(sid, namespace)):
                return True
        return False

    def sweep(self) -> None:
        now = time.monotonic()
        for eio_sid, deadline in list(self.pending.items()):
            if eio_sid not in self.eio.sockets or self.attached(eio_sid):
                del self.pending[eio_sid]
            elif now >= deadline:
                del self.pending[eio_sid]
                log.info("Engine.IO session closed: no Socket.IO connection within %s s", self.timeout,
                         extra={"eio_sid": eio_sid})
                self.close(eio_sid)
        self.warned.intersection_update(self.eio.sockets)

    def _loop(self) -> None:
        interval = max(0.2, min(1.0, self.timeout / 4))
        while socketio.server is self.server:
            self.server.sleep(interval)
            try:
                self.sweep()
            except Exception:
                log.exception("Engine.IO session sweep failed (will retry)")


def on_refused(refusal: Any = None, *_: Any) -> dict[str, Any]:
    """The ack of an event whose payload the packet decoder refused (`REFUSED_EVENT`)."""
    if isinstance(refusal, ApiError):
        return {"ok": False, **refusal.to_dict()}
    return {"ok": False, **error_body("invalid_payload", "Unknown event.")}
