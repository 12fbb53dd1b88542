"""Socket payloads are loaded by the REST schemas: the same limit and the same message for the same field."""

from __future__ import annotations

import pytest
from teams import project_url


@pytest.mark.parametrize("path", ["a/" * 300 + "x", "x" * 1100, "../etc/passwd", "a//b"])
def test_a_bad_path_is_refused_alike_over_rest_and_sockets(sio_connect, sio_team, sio_http, path):
    rest = sio_http.put(project_url(sio_team.project_id, "files", path), json={"content": "x"},
                        headers=sio_team.owner.headers)
    sio = sio_connect(sio_team.owner)
    ack = sio.emit("FILE_CHANGE", {"project_id": sio_team.project_id, "path": path, "content": "x"}, callback=True)
    assert rest.status_code == 422 and rest.json["error"]["code"] == "invalid_path"
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_path"
    assert rest.json["error"]["message"] in ack["error"]["message"]


@pytest.mark.parametrize("base_version", ["1", 1.5, True, -1])
def test_base_version_must_be_a_non_negative_json_integer_over_rest_and_sockets(sio_connect, sio_team, sio_http,
                                                                                base_version):
    body = {"content": "x", "base_version": base_version}
    rest = sio_http.put(project_url(sio_team.project_id, "files", "a.txt"), json=body, headers=sio_team.owner.headers)
    sio = sio_connect(sio_team.owner)
    ack = sio.emit("FILE_CHANGE", {"project_id": sio_team.project_id, "path": "a.txt", **body}, callback=True)
    assert rest.status_code == 422 and rest.json["error"]["code"] == "validation_error"
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"
    assert ack["error"]["details"]["fields"]["base_version"] == rest.json["error"]["details"]["fields"]["base_version"]


def test_a_cursor_must_point_at_a_valid_path(sio_connect, sio_team):
    sio = sio_connect(sio_team.owner)
    sio.emit("join", {"project_id": sio_team.project_id}, callback=True)
    ack = sio.emit("CURSOR_UPDATE", {"project_id": sio_team.project_id, "path": "../x", "line": 1, "column": 1},
                   callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_path"
