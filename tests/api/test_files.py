"""Files over REST: list, get, put (create/replace, base_version semantics), delete, path rules, size limit, and
the FILE_CHANGE broadcast; plus the service interface the socket handler uses."""

from __future__ import annotations

import pytest
from teams import make_team, project_url

from workspace import events
from workspace.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from workspace.files import service


@pytest.fixture
def app(make_app):
    return make_app(MAX_FILE_BYTES=64)


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


@pytest.fixture
def file_events():
    """The file events the service announces, in order (a deletion marked `deleted`)."""
    calls = []

    def saved(app, **kwargs):
        calls.append(kwargs)

    def deleted(app, **kwargs):
        calls.append({**kwargs, "deleted": True})

    with events.file_saved.connected_to(saved), events.file_deleted.connected_to(deleted):
        yield calls


def put(client, team, path, user=None, **body):
    return client.put(project_url(team.project_id, "files", path), json=body, headers=(user or team.owner).headers)


def test_put_creates_then_replaces(client, team, file_events):
    created = put(client, team, "src/main.py", content="print(1)\n")
    assert created.status_code == 201
    assert created.json == {"path": "src/main.py", "version": 1}
    replaced = put(client, team, "src/main.py", user=team.collaborator, content="print(2)\n")
    assert replaced.status_code == 200
    assert replaced.json == {"path": "src/main.py", "version": 2}
    got = client.get(project_url(team.project_id, "files", "src/main.py"), headers=team.viewer.headers).json
    assert got["content"] == "print(2)\n" and got["version"] == 2 and got["updated_by"] == team.collaborator.id
    assert set(got) == {"path", "content", "version", "updated_at", "updated_by"}
    assert [(e["path"], e["version"], e["content"], e["user"]["id"]) for e in file_events] == [
        ("src/main.py", 1, "print(1)\n", team.owner.id), ("src/main.py", 2, "print(2)\n", team.collaborator.id)]


def test_list_files_by_path_without_content(client, team):
    put(client, team, "b.txt", content="héllo")
    put(client, team, "a/z.txt", content="")
    response = client.get(project_url(team.project_id, "files"), headers=team.viewer.headers)
    assert response.status_code == 200
    items = response.json["items"]
    assert [(i["path"], i["version"], i["size"]) for i in items] == [("a/z.txt", 1, 0), ("b.txt", 1, 6)]
    assert set(items[0]) == {"path", "version", "size", "updated_at", "updated_by"}


def test_stale_base_version_is_409_with_current_version(client, team):
    put(client, team, "f.txt", content="1")
    assert put(client, team, "f.txt", content="2", base_version=1).json["version"] == 2
    stale = put(client, team, "f.txt", content="3", base_version=1)
    assert stale.status_code == 409
    assert stale.json["error"]["code"] == "conflict"
    assert stale.json["error"]["details"] == {"current_version": 2}
    assert client.get(project_url(team.project_id, "files", "f.txt"), headers=team.owner.headers).json["content"] == "2"


def test_base_version_zero_means_create_only(client, team):
    assert put(client, team, "new.txt", content="a", base_version=0).status_code == 201
    again = put(client, team, "new.txt", content="b", base_version=0)
    assert again.status_code == 409 and again.json["error"]["details"]["current_version"] == 1


def test_base_version_on_missing_file_conflicts_with_version_0(client, team):
    response = put(client, team, "ghost.txt", content="a", base_version=3)
    assert response.status_code == 409
    assert response.json["error"]["details"]["current_version"] == 0


def test_without_base_version_a_write_overwrites_and_bumps(client, team):
    versions = [put(client, team, "f.txt", content=str(i)).json["version"] for i in range(3)]
    assert versions == [1, 2, 3]


def test_delete_then_get_is_404_and_broadcasts_deleted(client, team, file_events):
    put(client, team, "dir/f.txt", content="x")
    put(client, team, "dir/f.txt", content="y")
    response = client.delete(project_url(team.project_id, "files", "dir/f.txt"), headers=team.collaborator.headers)
    assert response.status_code == 204
    assert file_events[-1]["deleted"] is True and file_events[-1]["version"] == 2
    missing = client.get(project_url(team.project_id, "files", "dir/f.txt"), headers=team.owner.headers)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "file_not_found"
    again = client.delete(project_url(team.project_id, "files", "dir/f.txt"), headers=team.owner.headers)
    assert again.status_code == 404
    # Re-created after a delete it starts again at version 1.
    assert put(client, team, "dir/f.txt", content="z", base_version=0).json["version"] == 1


@pytest.mark.parametrize("path", [
    "../etc/passwd", "a/../../b", "a/./b", "a//b", "a/", "back\\slash", "tab\there", "nul\x01", "x" * 513,
    "a/" + "y" * 256, " lead", "trail ", "semi;colon", "q?mark", "star*", "pipe|", "quote\"", "lt<",
])
def test_invalid_paths_are_422_invalid_path(app, team, path):
    with app.app_context(), pytest.raises(ValidationFailed) as caught:
        service.save_file(team.project_id, {"id": team.owner.id, "name": "Owner"}, path, "x")
    assert caught.value.code == "invalid_path"


@pytest.mark.parametrize("path", ["../etc/passwd", "a/./b", "x" * 513, "semi;colon"])
def test_invalid_paths_over_rest(client, team, path):
    response = put(client, team, path, content="x")
    assert response.status_code in (404, 422)  # clients may normalize ".." away before it reaches us
    if response.status_code == 422:
        assert response.json["error"]["code"] == "invalid_path"


def test_leading_slash_and_absolute_paths_are_refused(app, team):
    with app.app_context(), pytest.raises(ValidationFailed):
        service.save_file(team.project_id, {"id": team.owner.id, "name": "Owner"}, "/etc/passwd", "x")


@pytest.mark.parametrize("path", ["README.md", "src/app/main.py", "naïve/日本語.txt", "a b/c-d_e.f~@+=,()[]"])
def test_valid_paths(client, team, path):
    assert put(client, team, path, content="x").status_code == 201
    assert client.get(project_url(team.project_id, "files", path), headers=team.owner.headers).json["path"] == path


def test_content_over_the_limit_is_413_counted_in_utf8_bytes(client, team):
    assert put(client, team, "ok.txt", content="x" * 64).status_code == 201
    too_big = put(client, team, "big.txt", content="é" * 33)  # 66 bytes, 33 characters
    assert too_big.status_code == 413
    assert too_big.json["error"]["code"] == "file_too_large"
    assert too_big.json["error"]["details"] == {"size": 66, "max_bytes": 64}


@pytest.mark.parametrize("body, code", [
    ({"content": "a\x00b"}, "invalid_content"),
    ({"content": "\ud800"}, "invalid_content"),
    ({}, "validation_error"),
    ({"content": 5}, "validation_error"),
    ({"content": "x", "base_version": -1}, "validation_error"),
    ({"content": "x", "base_version": "one"}, "validation_error"),
])
def test_bad_bodies_are_422(client, team, body, code):
    response = put(client, team, "f.txt", **body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == code


def test_service_interface_for_the_socket_handler(app, team, file_events):
    owner = {"id": team.owner.id, "name": "Owner"}
    with app.app_context():
        saved = service.save_file(team.project_id, owner, "s.txt", "one", skip_sid="sid-1")
        assert saved == service.SavedFile(path="s.txt", version=1, created=True)
        assert service.save_file(team.project_id, owner, "s.txt", "two", base_version=1).version == 2
        with pytest.raises(Conflict) as caught:
            service.save_file(team.project_id, owner, "s.txt", "three", base_version=1)
        assert caught.value.details == {"current_version": 2}
        with pytest.raises(PayloadTooLarge):
            service.save_file(team.project_id, owner, "s.txt", "x" * 65)
        with pytest.raises(Forbidden):
            service.save_file(team.project_id, {"id": team.viewer.id, "name": "V"}, "s.txt", "x")
        with pytest.raises(NotFound):
            service.save_file(team.project_id, {"id": team.other.id, "name": "O"}, "s.txt", "x")
        with pytest.raises(ValidationFailed):
            service.save_file(team.project_id, owner, "s.txt", "x", base_version=True)
        stats = service.file_stats(team.project_id)
        assert stats.count == 1 and stats.last_updated_at is not None
        service.delete_file(team.project_id, owner, "s.txt", skip_sid="sid-2")
        assert service.file_count(team.project_id) == 0
    assert file_events[0]["skip_sid"] == "sid-1"
    assert file_events[-1]["skip_sid"] == "sid-2" and file_events[-1]["deleted"] is True


def test_files_are_per_project(client, make_user, team):
    put(client, team, "same.txt", content="team")
    other = make_team(client, make_user)
    assert put(client, other, "same.txt", content="other").json["version"] == 1
    assert client.get(project_url(team.project_id, "files", "same.txt"),
                      headers=team.owner.headers).json["content"] == "team"
