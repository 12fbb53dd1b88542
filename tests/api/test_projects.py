"""Projects: create, list (paginated, own memberships only, with role, constant query count), get, update, delete."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from teams import PROJECTS, create_project, invite, make_team, project_url

from workspace import events as domain_events
from workspace.extensions import db
from workspace.models import Membership, Project, Role


@pytest.fixture
def events():
    """The membership and deletion events the project services announce, as (name, *arguments)."""
    calls = []

    def membership_changed(app, *, project_id, user_id, role):
        calls.append(("membership_changed", project_id, user_id, role))

    def project_deleted(app, *, project_id, member_ids):
        calls.append(("project_deleted", project_id, member_ids))

    with (domain_events.membership_changed.connected_to(membership_changed),
          domain_events.project_deleted.connected_to(project_deleted)):
        yield calls


def test_create_makes_the_caller_owner(client, make_user, events):
    ada = make_user()
    body = create_project(client, ada, name="  Apollo  ", description="to the moon")
    assert body["name"] == "Apollo"
    assert body["description"] == "to the moon"
    assert body["role"] == "owner"
    assert body["owner_id"] == ada.id
    assert body["created_at"].endswith("+00:00") and body["updated_at"]
    assert set(body) == {"id", "name", "description", "role", "owner_id", "created_at", "updated_at"}
    assert ("membership_changed", body["id"], ada.id, "owner") in events


@pytest.mark.parametrize("payload, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"name": "ok", "description": "d" * 10_001}, "description"),
    ({"name": "a\x00b"}, "name"),
])
def test_create_validation(client, make_user, payload, field):
    response = client.post(PROJECTS, json=payload, headers=make_user().headers)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_create_requires_json_and_auth(client, make_user):
    assert client.post(PROJECTS, json={"name": "x"}).status_code == 401
    response = client.post(PROJECTS, data="name=x", headers={**make_user().headers,
                                                             "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_list_shows_only_own_projects_with_roles_newest_first(client, make_user):
    team = make_team(client, make_user)
    solo = create_project(client, team.viewer, name="Viewer's own")
    create_project(client, team.other, name="Not shared")

    body = client.get(PROJECTS, headers=team.viewer.headers).json
    assert body["total"] == 2 and body["page"] == 1 and body["per_page"] == 20
    assert [(p["id"], p["role"]) for p in body["items"]] == [(solo["id"], "owner"), (team.project_id, "viewer")]
    collab = client.get(PROJECTS, headers=team.collaborator.headers).json
    assert [(p["id"], p["role"]) for p in collab["items"]] == [(team.project_id, "collaborator")]


def test_list_paginates(client, make_user):
    ada = make_user()
    ids = [create_project(client, ada, name=f"p{i}")["id"] for i in range(5)]
    pages = [client.get(PROJECTS + f"?page={n}&per_page=2", headers=ada.headers).json for n in (1, 2, 3, 4)]
    assert [[p["id"] for p in page["items"]] for page in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert all(page["total"] == 5 and page["per_page"] == 2 for page in pages)


@pytest.mark.parametrize("query", ["per_page=0", "per_page=101", "page=0", "page=abc", "per_page=-1"])
def test_list_rejects_bad_paging(client, make_user, query):
    response = client.get(PROJECTS + "?" + query, headers=make_user().headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def _seed_memberships(app, user_id: int, count: int) -> None:
    with app.app_context():
        projects = [Project(name=f"seed {i}", description="", owner_id=user_id) for i in range(count)]
        db.session.add_all(projects)
        db.session.flush()
        db.session.add_all(Membership(project_id=p.id, user_id=user_id, role=Role.VIEWER) for p in projects)
        db.session.commit()


def _count_queries(app, fn):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return statements


@pytest.mark.parametrize("count", [1, 100])
def test_list_query_count_does_not_grow_with_size(app, client, make_user, count):
    ada = make_user()
    _seed_memberships(app, ada.id, count)
    headers = {**ada.headers, "Cache-Control": "no-cache"}
    statements = _count_queries(app, lambda: client.get(PROJECTS + "?per_page=100", headers=headers))
    assert len(statements) == 1, statements  # the page with its total, whatever the size
    assert client.get(PROJECTS + "?per_page=100", headers=headers).json["total"] == count


def test_an_empty_page_costs_one_more_query_for_the_total(app, client, make_user):
    ada = make_user()
    _seed_memberships(app, ada.id, 3)
    headers = {**ada.headers, "Cache-Control": "no-cache"}
    statements = _count_queries(app, lambda: client.get(PROJECTS + "?page=9", headers=headers))
    assert len(statements) == 2
    assert client.get(PROJECTS + "?page=9", headers=headers).json == {"items": [], "page": 9, "per_page": 20,
                                                                       "total": 3}


def test_cached_list_makes_no_query(app, client, make_user):
    ada = make_user()
    create_project(client, ada)
    client.get(PROJECTS, headers=ada.headers)
    statements = _count_queries(app, lambda: client.get(PROJECTS, headers=ada.headers))
    assert statements == []


def test_get_returns_the_callers_role(client, make_user):
    team = make_team(client, make_user)
    for member, role in [(team.owner, "owner"), (team.collaborator, "collaborator"), (team.viewer, "viewer")]:
        response = client.get(project_url(team.project_id), headers=member.headers)
        assert response.status_code == 200
        assert response.json["role"] == role
    missing = client.get(project_url(team.project_id), headers=team.other.headers)
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "project_not_found"
    assert client.get(project_url(999_999), headers=team.owner.headers).json == missing.json


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_changes_only_given_fields(client, make_user, method):
    ada = make_user()
    project = create_project(client, ada, name="Old", description="keep me")
    response = client.open(project_url(project["id"]), method=method, json={"name": "New"}, headers=ada.headers)
    assert response.status_code == 200
    assert response.json["name"] == "New" and response.json["description"] == "keep me"
    assert response.json["updated_at"] >= project["updated_at"]
    response = client.open(project_url(project["id"]), method=method, json={"description": ""}, headers=ada.headers)
    assert response.json["name"] == "New" and response.json["description"] == ""
    assert client.open(project_url(project["id"]), method=method, json={}, headers=ada.headers).status_code == 200
    bad = client.open(project_url(project["id"]), method=method, json={"name": " "}, headers=ada.headers)
    assert bad.status_code == 422


def test_only_owner_updates_and_deletes(client, make_user):
    team = make_team(client, make_user)
    for user, status in [(team.collaborator, 403), (team.viewer, 403), (team.other, 404)]:
        patch = client.patch(project_url(team.project_id), json={"name": "x"}, headers=user.headers)
        assert patch.status_code == status
        assert client.delete(project_url(team.project_id), headers=user.headers).status_code == status
    forbidden = client.patch(project_url(team.project_id), json={"name": "x"}, headers=team.viewer.headers)
    assert forbidden.json["error"]["code"] == "forbidden"


def test_delete_removes_project_files_and_memberships_and_tells_members(app, client, make_user, events):
    team = make_team(client, make_user)
    client.put(project_url(team.project_id, "files", "a.txt"), json={"content": "x"}, headers=team.owner.headers)
    events.clear()
    assert client.delete(project_url(team.project_id), headers=team.owner.headers).status_code == 204
    assert client.get(project_url(team.project_id), headers=team.owner.headers).status_code == 404
    assert client.get(PROJECTS, headers=team.viewer.headers).json["items"] == []
    [(project_id, member_ids)] = [event[1:] for event in events if event[0] == "project_deleted"]
    assert project_id == team.project_id
    assert sorted(member_ids) == sorted([team.owner.id, team.collaborator.id, team.viewer.id])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 0
    assert client.delete(project_url(team.project_id), headers=team.owner.headers).status_code == 404


def test_invited_member_sees_project_in_list(client, make_user):
    ada, bob = make_user(), make_user()
    project = create_project(client, ada)
    assert client.get(PROJECTS, headers=bob.headers).json["total"] == 0
    invite(client, ada, project["id"], bob, "viewer")
    assert [p["role"] for p in client.get(PROJECTS, headers=bob.headers).json["items"]] == ["viewer"]
