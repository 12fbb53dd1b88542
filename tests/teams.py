"""A project with one member of each role (plus an outsider), built through the API as a client would."""

from __future__ import annotations

from types import SimpleNamespace

PROJECTS = "/api/v1/projects/"


def project_url(project_id: int, *rest: object) -> str:
    return "/".join([f"/api/v1/projects/{project_id}", *map(str, rest)])


def create_project(client, user, name: str = "Apollo", description: str = "") -> dict:
    response = client.post(PROJECTS, json={"name": name, "description": description}, headers=user.headers)
    assert response.status_code == 201, response.json
    return response.json


def invite(client, owner, project_id: int, user, role: str) -> None:
    response = client.post(project_url(project_id, "collaborators"), json={"email": user.email, "role": role},
                           headers=owner.headers)
    assert response.status_code == 201, response.json


def make_team(client, make_user) -> SimpleNamespace:
    """owner, collaborator, viewer, other (not a member) and the project's id."""
    team = SimpleNamespace(owner=make_user(name="Owner"), collaborator=make_user(name="Collab"),
                           viewer=make_user(name="Viewer"), other=make_user(name="Other"))
    team.project_id = create_project(client, team.owner)["id"]
    invite(client, team.owner, team.project_id, team.collaborator, "collaborator")
    invite(client, team.owner, team.project_id, team.viewer, "viewer")
    return team
