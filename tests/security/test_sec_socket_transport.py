"""Attacks on the Socket.IO transport itself, before and around authentication (issue 10: "Socket.IO accepts any
Origin in production", "Unauthenticated Engine.IO sessions live forever", "each malformed packet logs a ~1.8 KB
traceback", "Binary-attachment packets are not capped", "JSON nested ~1,000 deep and integers of 4,400+ digits
escape validation", and every library log line as JSON).

Each replays the attack over raw Engine.IO long-polling (what a browser would never send) against live gunicorn
web processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from realtime_live import NodeClient
from socket_attacks import RawPolling, json_lines, webs

from processes import start_web

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("stop_webs_together")]
EVIL = "http://evil.example"



def production(live_env: dict[str, str], **env: str) -> dict[str, str]:
    keys = {"SECRET_KEY": secrets.token_urlsafe(48), "JWT_SECRET_KEY": secrets.token_urlsafe(48)}
    return {**live_env, "APP_ENV": "production", **keys, "CORS_ORIGINS": "", **env}


def test_production_without_cors_origins_accepts_only_same_origin_browsers(live_env, processes):
    allowed = "https://app.example"
    with ThreadPoolExecutor(2) as pool:
        unset = pool.submit(start_web, production(live_env))
        listed = pool.submit(start_web, production(live_env, CORS_ORIGINS=allowed))
        (proc, base), (listed_proc, listed_base) = unset.result(), listed.result()
    processes += [proc, listed_proc]

    assert RawPolling(base, {"Origin": EVIL}).status == 400  # a page on another site
    assert RawPolling(base, {"Origin": base}).status == 200  # the app's own page
    assert RawPolling(base, {"Origin": base.replace("http://", "https://")}).status == 400  # another scheme
    assert RawPolling(base).status == 200  # not a browser: no Origin to check (the token still is)
    assert RawPolling(listed_base, {"Origin": allowed}).status == 200
    assert RawPolling(listed_base, {"Origin": EVIL}).status == 400
    assert RawPolling(listed_base, {"Origin": listed_base}).status == 400  # exactly the listed origins
    refused = [line for line in json_lines(proc.output()) if "is not an accepted origin" in line["message"]]
    assert refused and refused[0]["logger"] == "engineio.server", refused


def test_sessions_without_a_socketio_connect_are_closed(live_env, processes, team, clients):
    (proc, base), = webs(live_env, processes, count=1, SOCKET_CONNECT_TIMEOUT_SECONDS="1")
    member = NodeClient(base, team.owner.access, "member")
    clients.append(member)
    assert member.wait_connected()["type"] == "connect"
    silent = RawPolling(base)  # opens a session and never says who it is
    refused = RawPolling(base)
    assert refused.post('40{"token":"forged"}') == 200
    assert refused.wait_packet(lambda p: p.startswith("44")) is not None  # connect_error, session still open

    assert silent.wait_packet(lambda p: False) is None, "an anonymous session outlived the handshake timeout"
    assert refused.wait_packet(lambda p: False) is None, "a refused session outlived the handshake timeout"
    assert silent.post("40") == 400
    # a session that did connect is not touched
    assert member.emit("join", {"project_id": team.project_id})["ok"] is True
    assert [i for i in member.inbox.snapshot() if i["type"] == "disconnect"] == []


def test_malformed_packets_cost_one_log_line_and_no_traceback(live_env, processes, team):
    (proc, base), = webs(live_env, processes, count=1)
    junk = ["4x", "42[", "4{}", "42{}", "49999999999999-", "4/nope", "42[1,2", "4", "47", "42[]", "43abc"]
    for _ in range(2):
        session = RawPolling(base)
        assert session.post(f'40{{"token":"{team.owner.access}"}}') == 200
        assert session.wait_packet(lambda p: p.startswith("40")) is not None
        for _ in range(20):
            assert session.post(*junk) == 200
        # still usable afterwards, and the server's answer proves every junk packet before was processed
        assert session.post('421["leave",' + json.dumps({"project_id": team.project_id}) + "]") == 200
        ack = session.wait_packet(lambda p: p.startswith("431"))
        assert json.loads(ack[3:])[0]["ok"] is True

    lines = json_lines(proc.output())
    malformed = [line for line in lines if "malformed" in line["message"]]
    assert len(malformed) == 2, malformed  # one per session, whatever the number of packets
    assert not [line for line in lines if "Traceback" in json.dumps(line)]


def test_binary_attachments_are_capped_in_count_and_size(live_env, processes, team):
    (_, base), = webs(live_env, processes, count=1, SOCKET_MAX_ATTACHMENTS="2", SOCKET_MAX_ATTACHMENT_BYTES="1024")
    placeholders = ",".join(json.dumps({"_placeholder": True, "num": n}) for n in range(5))

    def connected() -> RawPolling:
        session = RawPolling(base)
        assert session.post(f'40{{"token":"{team.owner.access}"}}') == 200
        assert session.wait_packet(lambda p: p.startswith("40")) is not None
        return session

    many = connected()
    assert many.post(f'455-["sync-update",{placeholders}]', *["bAAAA"] * 5) in (200, 400)
    big = connected()
    assert big.post('451-["sync-update",{"_placeholder":true,"num":0}]', "b" + "A" * 4000) in (200, 400)
    for session in (many, big):
        assert session.wait_packet(lambda p: False) is None, "a session over the attachment caps stayed open"


@pytest.mark.parametrize(("payload", "code"), [
    ('{"project_id": 1, "path": "a", "content": "x", "meta": ' + "[" * 100 + "]" * 100 + "}", "invalid_json"),
    ("[" * 5000 + "]" * 5000, "invalid_json"),
    ('{"project_id": 1' + "0" * 5000 + ', "path": "a", "content": "x"}', "number_too_large"),
])
def test_pathological_json_in_a_socket_event_gets_a_clean_error_ack(payload, code, live_env, processes, team):
    (proc, base), = webs(live_env, processes, count=1)
    session = RawPolling(base)
    assert session.post(f'40{{"token":"{team.owner.access}"}}') == 200
    assert session.wait_packet(lambda p: p.startswith("40")) is not None
    assert session.post('427["FILE_CHANGE",' + payload + "]") == 200
    ack = session.wait_packet(lambda p: p.startswith("437"))
    assert ack is not None, "no ack: the event was dropped"
    answer = json.loads(ack[3:])[0]
    assert answer["ok"] is False and answer["error"]["code"] == code, answer
    assert not [line for line in json_lines(proc.output()) if "Traceback" in json.dumps(line)]
