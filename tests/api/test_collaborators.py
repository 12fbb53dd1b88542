"""Collaborators: list, invite by email, change role, remove, leave; the last owner always stays."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from pg_locks import holding, wait_for_lock_waiters
from teams import PROJECTS, create_project, make_team, project_url

from workspace import events


@pytest.fixture
def membership_events():
    """(project_id, user_id, role) of every membership change announced."""
    calls = []

    def changed(app, *, project_id, user_id, role):
        calls.append((project_id, user_id, role))

    with events.membership_changed.connected_to(changed):
        yield calls


@pytest.fixture
def team(client, make_user):
    return make_team(client, make_user)


def collaborators(client, team, user=None):
    return client.get(project_url(team.project_id, "collaborators"), headers=(user or team.owner).headers)


def test_list_shows_every_member_with_role(client, team):
    response = collaborators(client, team, team.viewer)
    assert response.status_code == 200
    items = response.json["items"]
    assert [(i["user_id"], i["role"]) for i in items] == [
        (team.owner.id, "owner"), (team.collaborator.id, "collaborator"), (team.viewer.id, "viewer")]
    assert items[1]["email"] == team.collaborator.email and items[1]["name"] == "Collab"
    assert set(items[0]) == {"user_id", "email", "name", "role", "added_at"}


def test_invite_by_email_is_case_insensitive_and_notifies(client, make_user, membership_events):
    ada, bob = make_user(), make_user()
    project = create_project(client, ada)
    response = client.post(project_url(project["id"], "collaborators"),
                           json={"email": "  " + bob.email.upper(), "role": "collaborator"}, headers=ada.headers)
    assert response.status_code == 201
    assert response.json["user_id"] == bob.id and response.json["role"] == "collaborator"
    assert (project["id"], bob.id, "collaborator") in membership_events


def test_invite_unknown_email_is_404(client, team):
    response = client.post(project_url(team.project_id, "collaborators"),
                           json={"email": "nobody@example.com", "role": "viewer"}, headers=team.owner.headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "user_not_found"


@pytest.mark.parametrize("who", ["owner", "viewer"])
def test_invite_existing_member_is_409(client, team, who):
    response = client.post(project_url(team.project_id, "collaborators"),
                           json={"email": getattr(team, who).email, "role": "viewer"}, headers=team.owner.headers)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "already_member"


@pytest.mark.parametrize("payload, field", [
    ({"email": "x@example.com", "role": "owner"}, "role"),
    ({"email": "x@example.com", "role": "admin"}, "role"),
    ({"email": "not an email", "role": "viewer"}, "email"),
    ({"role": "viewer"}, "email"),
    ({"email": "x@example.com"}, "role"),
])
def test_invite_validation(client, team, payload, field):
    response = client.post(project_url(team.project_id, "collaborators"), json=payload, headers=team.owner.headers)
    assert response.status_code == 422
    assert field in response.json["error"]["details"]["fields"]


def test_change_role_and_promote_to_owner(client, team, membership_events):
    url = project_url(team.project_id, "collaborators", team.viewer.id)
    response = client.patch(url, json={"role": "collaborator"}, headers=team.owner.headers)
    assert response.status_code == 200 and response.json["role"] == "collaborator"
    assert (team.project_id, team.viewer.id, "collaborator") in membership_events
    assert client.patch(url, json={"role": "owner"}, headers=team.owner.headers).json["role"] == "owner"
    # Now a second owner: the first may step down.
    me = project_url(team.project_id, "collaborators", team.owner.id)
    assert client.patch(me, json={"role": "viewer"}, headers=team.owner.headers).status_code == 200
    assert client.get(project_url(team.project_id), headers=team.owner.headers).json["role"] == "viewer"


def test_change_role_of_non_member_is_404(client, team):
    response = client.patch(project_url(team.project_id, "collaborators", team.other.id), json={"role": "viewer"},
                            headers=team.owner.headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "member_not_found"


def test_last_owner_cannot_be_demoted_or_removed(client, team):
    url = project_url(team.project_id, "collaborators", team.owner.id)
    for response in (client.patch(url, json={"role": "collaborator"}, headers=team.owner.headers),
                     client.delete(url, headers=team.owner.headers)):
        assert response.status_code == 409
        assert response.json["error"]["code"] == "last_owner"
    assert client.get(project_url(team.project_id), headers=team.owner.headers).json["role"] == "owner"


def test_owner_removes_a_member(client, team, membership_events):
    url = project_url(team.project_id, "collaborators", team.collaborator.id)
    assert client.delete(url, headers=team.owner.headers).status_code == 204
    assert (team.project_id, team.collaborator.id, None) in membership_events
    assert client.get(project_url(team.project_id), headers=team.collaborator.headers).status_code == 404
    assert client.delete(url, headers=team.owner.headers).status_code == 404


@pytest.mark.parametrize("who", ["collaborator", "viewer"])
def test_member_may_leave_but_not_remove_others(client, team, who):
    member = getattr(team, who)
    other = team.viewer if who == "collaborator" else team.collaborator
    forbidden = client.delete(project_url(team.project_id, "collaborators", other.id), headers=member.headers)
    assert forbidden.status_code == 403
    assert client.delete(project_url(team.project_id, "collaborators", member.id),
                         headers=member.headers).status_code == 204
    assert client.get(PROJECTS, headers=member.headers).json["items"] == []


@pytest.mark.parametrize("method, body", [("PATCH", {"role": "viewer"}), ("DELETE", None)], ids=["demote", "remove"])
def test_owners_demoting_or_removing_each_other_at_once_leave_one_owner(app, client, team, method, body):
    """The last-owner check locks the project's owner rows. A blocker holds those rows while both owners send their
    request; once PostgreSQL shows both waiting on it, it lets go: the first one through succeeds and the second,
    re-reading the owners under the lock, is refused. Without the lock both would see two owners and both succeed."""
    promote = project_url(team.project_id, "collaborators", team.collaborator.id)
    assert client.patch(promote, json={"role": "owner"}, headers=team.owner.headers).status_code == 200
    results = {}

    def act(actor, target):
        response = app.test_client().open(project_url(team.project_id, "collaborators", target.id), method=method,
                                           json=body, headers=actor.headers)
        results[actor.id] = response.status_code

    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    owner_rows = ["SELECT 1 FROM memberships WHERE project_id = :p AND role = 'owner' FOR UPDATE"]
    try:
        with holding(engine, owner_rows, {"p": team.project_id}) as blocker:
            threads = [threading.Thread(target=act, args=(team.owner, team.collaborator)),
                       threading.Thread(target=act, args=(team.collaborator, team.owner))]
            for thread in threads:
                thread.start()
            wait_for_lock_waiters(engine, blocker, 2)
        for thread in threads:
            thread.join(15)
    finally:
        engine.dispose()
    assert sorted(results.values()) == [200 if method == "PATCH" else 204, 409]
    owners = [i for i in collaborators(client, team, team.viewer).json["items"] if i["role"] == "owner"]
    assert len(owners) == 1
