"""Every project, collaborator and file endpoint × {owner, collaborator, viewer, other user, anonymous}.

Non-members get 404 (the project's existence is not revealed), members without the right 403, no token 401.
"""

from __future__ import annotations

import pytest
from teams import PROJECTS, make_team, project_url

ACTORS = ("owner", "collaborator", "viewer", "other", "anonymous")


def _someone_else(team, actor):
    """A member other than the actor (the target of "remove someone")."""
    return team.collaborator if actor == "viewer" else team.viewer


def _self_or_viewer(team, actor):
    return getattr(team, actor) if actor in ("owner", "collaborator", "viewer") else team.viewer


# name: (request builder(team, actor) -> (method, url, json), {actor: expected status})
CASES = {
    "list projects": (lambda t, a: ("GET", PROJECTS, None),
                      dict(owner=200, collaborator=200, viewer=200, other=200, anonymous=401)),
    "create project": (lambda t, a: ("POST", PROJECTS, {"name": "n"}),
                       dict(owner=201, collaborator=201, viewer=201, other=201, anonymous=401)),
    "get project": (lambda t, a: ("GET", project_url(t.project_id), None),
                    dict(owner=200, collaborator=200, viewer=200, other=404, anonymous=401)),
    "put project": (lambda t, a: ("PUT", project_url(t.project_id), {"name": "n"}),
                    dict(owner=200, collaborator=403, viewer=403, other=404, anonymous=401)),
    "patch project": (lambda t, a: ("PATCH", project_url(t.project_id), {"description": "d"}),
                      dict(owner=200, collaborator=403, viewer=403, other=404, anonymous=401)),
    "delete project": (lambda t, a: ("DELETE", project_url(t.project_id), None),
                       dict(owner=204, collaborator=403, viewer=403, other=404, anonymous=401)),
    "list collaborators": (lambda t, a: ("GET", project_url(t.project_id, "collaborators"), None),
                           dict(owner=200, collaborator=200, viewer=200, other=404, anonymous=401)),
    "invite collaborator": (lambda t, a: ("POST", project_url(t.project_id, "collaborators"),
                                          {"email": t.outsider.email, "role": "viewer"}),
                            dict(owner=201, collaborator=403, viewer=403, other=404, anonymous=401)),
    "change role": (lambda t, a: ("PATCH", project_url(t.project_id, "collaborators", t.viewer.id),
                                  {"role": "collaborator"}),
                    dict(owner=200, collaborator=403, viewer=403, other=404, anonymous=401)),
    "remove someone else": (lambda t, a: ("DELETE", project_url(t.project_id, "collaborators",
                                                                _someone_else(t, a).id), None),
                            dict(owner=204, collaborator=403, viewer=403, other=404, anonymous=401)),
    "remove oneself": (lambda t, a: ("DELETE", project_url(t.project_id, "collaborators",
                                                           _self_or_viewer(t, a).id), None),
                       dict(owner=409, collaborator=204, viewer=204, other=404, anonymous=401)),
    "list files": (lambda t, a: ("GET", project_url(t.project_id, "files"), None),
                   dict(owner=200, collaborator=200, viewer=200, other=404, anonymous=401)),
    "get file": (lambda t, a: ("GET", project_url(t.project_id, "files", "docs/readme.md"), None),
                 dict(owner=200, collaborator=200, viewer=200, other=404, anonymous=401)),
    "create file": (lambda t, a: ("PUT", project_url(t.project_id, "files", "new.txt"), {"content": "x"}),
                    dict(owner=201, collaborator=201, viewer=403, other=404, anonymous=401)),
    "replace file": (lambda t, a: ("PUT", project_url(t.project_id, "files", "docs/readme.md"),
                                   {"content": "y", "base_version": 1}),
                     dict(owner=200, collaborator=200, viewer=403, other=404, anonymous=401)),
    "delete file": (lambda t, a: ("DELETE", project_url(t.project_id, "files", "docs/readme.md"), None),
                    dict(owner=204, collaborator=204, viewer=403, other=404, anonymous=401)),
}


@pytest.fixture
def team(client, make_user):
    team = make_team(client, make_user)
    team.outsider = make_user(name="Outsider")
    response = client.put(project_url(team.project_id, "files", "docs/readme.md"), json={"content": "hello"},
                          headers=team.owner.headers)
    assert response.status_code == 201
    return team


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("case", list(CASES))
def test_access(client, team, case, actor):
    build, expected = CASES[case]
    method, url, body = build(team, actor)
    headers = {} if actor == "anonymous" else getattr(team, actor).headers
    response = client.open(url, method=method, json=body, headers=headers)
    assert response.status_code == expected[actor], response.get_data(as_text=True)
    if response.status_code >= 400:
        assert set(response.json) == {"error"} and response.json["error"]["code"]
    if expected[actor] == 404:
        assert response.json["error"]["code"] == "project_not_found"
