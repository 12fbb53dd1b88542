"""The repository's proxy (deploy/haproxy.cfg, the very file compose mounts) in front of two real gunicorn web
processes: Socket.IO sessions stay on one process (long-polling too), a killed process fails over, new clients from
one address spread over both, Host arrives with its port and /metrics is not public.

The proxy binary comes from Debian (`apt-get install haproxy`, done by .ci/run); only its addresses are set, through
the environment variables the file itself reads.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from realtime_live import NodeClient, PyClient, wait_until

from processes import ROOT, free_port, start, start_web, wait_http

pytestmark = pytest.mark.live
CONFIG = ROOT / "deploy" / "haproxy.cfg"


@pytest.fixture(scope="module")
def haproxy() -> str:
    path = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
    if path is None:
        message = "haproxy is not installed (apt-get install haproxy; .ci/run does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run this test, not skip it
        pytest.skip(message)
    return path


@pytest.fixture
def stack(haproxy, live_env, processes):
    """Two web processes (trusting one proxy hop, as compose runs them) behind HAProxy; returns (proxy, webs)."""
    env = {**live_env, "SHUTDOWN_DRAIN_SECONDS": "1", "TRUSTED_PROXIES": "1"}
    with ThreadPoolExecutor(2) as pool:
        webs = list(pool.map(lambda _: start_web(env), range(2)))
    processes.extend(proc for proc, _ in webs)
    port = free_port()
    addresses = {"PROXY_BIND": f"127.0.0.1:{port}",
                 "WEB1_ADDR": webs[0][1].removeprefix("http://"), "WEB2_ADDR": webs[1][1].removeprefix("http://")}
    check = start([haproxy, "-c", "-q", "-f", str(CONFIG)], {**os.environ, **addresses}, "haproxy-check")
    assert check.popen.wait(30) == 0, check.output()
    proxy = start([haproxy, "-db", "-f", str(CONFIG)], {**os.environ, **addresses}, "haproxy")
    processes.append(proxy)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", proc=proxy)
    return base, webs


def connections(base: str) -> float:
    """Socket.IO connections open on one web process, read from that process's own /metrics."""
    text = requests.get(f"{base}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "workspace_socket_connections")


def placement(webs) -> list[float]:
    return [connections(base) for _, base in webs]


def round_trips(client, project_id: int, count: int = 6) -> None:
    """Several acknowledged events: over long-polling each is a POST and a GET, so each crosses the proxy again."""
    for _ in range(count):
        ack = client.emit("join", {"project_id": project_id})
        assert ack["ok"] is True, ack
    assert not [i for i in client.inbox.snapshot() if i["type"] in ("disconnect", "connect_error")], client.name


def test_polling_and_websocket_clients_stay_on_one_process(stack, team, clients):
    proxy, webs = stack
    polling = NodeClient(proxy, team.owner.access, "polling", transport="polling")
    clients.append(polling)
    assert polling.wait_connected()["type"] == "connect"
    round_trips(polling, team.project_id)
    assert sorted(wait_until(lambda: placement(webs) if sum(placement(webs)) == 1 else None,
                             what="the polling client on one process")) == [0, 1]

    websocket = NodeClient(proxy, team.collaborator.access, "websocket", transport="websocket")
    clients.append(websocket)
    assert websocket.wait_connected()["type"] == "connect"
    round_trips(websocket, team.project_id)
    round_trips(polling, team.project_id)  # still on its process after another client took the other one
    # Round-robin for new sessions: the second client went to the other process.
    assert wait_until(lambda: placement(webs) == [1, 1], what="one client per process")


def test_a_killed_process_fails_over_to_the_other(stack, team, clients):
    proxy, webs = stack
    polling = NodeClient(proxy, team.owner.access, "polling", transport="polling")
    clients.append(polling)
    assert polling.wait_connected()["type"] == "connect"
    round_trips(polling, team.project_id, 2)
    where = wait_until(lambda: placement(webs) if sum(placement(webs)) == 1 else None, what="placement")
    (victim, _), (_, survivor) = (webs[0], webs[1]) if where[0] == 1 else (webs[1], webs[0])

    victim.kill()  # mid-session, no goodbye: the proxy's cookie still names the dead process
    polling.inbox.wait(lambda i: i["type"] == "disconnect", what="the client noticing the dead process")
    connects = lambda: [i for i in polling.inbox.snapshot() if i["type"] == "connect"]  # noqa: E731
    polling.inbox.wait(lambda i: i["type"] == "connect" and len(connects()) == 2, what="reconnect through the proxy")
    ack = polling.emit("join", {"project_id": team.project_id})
    assert ack["ok"] is True, ack
    assert wait_until(lambda: connections(survivor) == 1, what="the session on the surviving process")
    # New sessions keep working while one process is down.
    fresh = NodeClient(proxy, team.collaborator.access, "fresh", transport="polling")
    clients.append(fresh)
    assert fresh.wait_connected()["type"] == "connect"
    round_trips(fresh, team.project_id, 2)


def test_clients_behind_one_address_spread_over_both_processes(stack, team, clients):
    proxy, webs = stack
    users = [team.owner, team.collaborator, team.viewer, team.owner]
    for number, user in enumerate(users):
        client = (NodeClient(proxy, user.access, f"node-{number}", transport="polling") if number % 2
                  else PyClient(proxy, user.access, f"python-{number}"))
        clients.append(client)
        assert client.wait_connected()["type"] == "connect"
    # Every client came from 127.0.0.1, as clients behind NAT do; an address hash would put them all on one process.
    assert wait_until(lambda: placement(webs) == [2, 2], what="two clients per process")


def access_lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]


def test_host_keeps_its_port_and_metrics_are_not_public(stack, processes):
    proxy, webs = stack
    port = proxy.rsplit(":", 1)[1]
    # A routing redirect is built from the Host the app saw: it must be the address the client used, port included.
    redirect = requests.get(f"{proxy}/api/v1/projects", allow_redirects=False, timeout=10)
    assert redirect.status_code in (301, 308), redirect.status_code
    assert redirect.headers["Location"].startswith(f"http://127.0.0.1:{port}/"), redirect.headers["Location"]

    assert requests.get(f"{proxy}/metrics", timeout=10).status_code == 404
    # With credentials the request reaches the app, whose token check decides (the testing app serves openly).
    assert requests.get(f"{proxy}/metrics", headers={"Authorization": "Bearer x"}, timeout=10).status_code == 200
    # The proxy's request id reaches the app and comes back; a caller's sane one is kept, a malformed one replaced.
    generated = requests.get(f"{proxy}/healthz?probe=1", timeout=10).headers["X-Request-ID"]
    assert requests.get(f"{proxy}/healthz", headers={"X-Request-ID": "abc-123"},
                        timeout=10).headers["X-Request-ID"] == "abc-123"
    replaced = requests.get(f"{proxy}/healthz", headers={"X-Request-ID": 'x"]\\'}, timeout=10).headers["X-Request-ID"]
    assert replaced != 'x"]\\'
    # The proxy logs one JSON line per request with the same id: a request can be followed from proxy to app.
    proxy_proc = next(proc for proc in processes if proc.name == "haproxy")
    wanted = {generated, "abc-123", replaced}

    def logged():
        lines = [line for line in access_lines(proxy_proc) if line["request_id"] in wanted]
        return lines if len(lines) == 3 else None

    lines = wait_until(logged, what="the proxy's access lines")
    assert {(line["path"], line["status"], line["logger"]) for line in lines} == {("/healthz", 200, "haproxy")}

    # Booting logged no WARNING (eventlet's known deprecation notice is INFO): warnings stay worth reading.
    for proc, _ in webs:
        warnings = [line for line in proc.output().splitlines()
                    if line.startswith("{") and json.loads(line).get("level") == "WARNING"]
        assert not warnings, warnings
