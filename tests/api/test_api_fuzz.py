"""Schemathesis against our own /openapi.json, in process (WSGI), authenticated with a real token.

Every operation of the whole API (including routes other features add) gets a bounded number of generated
requests, valid ones and deliberately invalid ones, from a fixed seed (hypothesis `derandomize`). Checks: no 5xx,
and every response matches the schema documented for its status. For the projects/collaborators/files blueprints
the status itself must also be documented explicitly (not only through the catch-all `default` response).

Half of the cases aim at a project the fuzzing user owns (with a file in it), so the generated data reaches the
real logic rather than stopping at 404; the project is restored when a case deleted it.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from workspace.extensions import db
from workspace.models import Membership, Project, ProjectFile, Role

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Blueprints (OpenAPI tags) whose every status must be documented explicitly.
STRICT_TAGS = {"projects", "collaborators", "files"}


@pytest.fixture
def app(make_app):
    # Rate limits would only turn the auth routes' cases into 429s (make_user builds users through this app).
    return make_app(RATELIMIT_ENABLED=False, MAX_FILE_BYTES=2048)


@pytest.fixture
def target(app, make_user):
    """The fuzzing user with a project of their own (id fixed, recreated when a case deletes it) and a second
    member in it, the target of the collaborator routes."""
    user = make_user(name="Fuzzer")
    user.member_id = make_user(name="Member").id
    with app.app_context():
        project = Project(name="Fuzz", description="", owner_id=user.id)
        db.session.add(project)
        db.session.flush()
        user.project_id = project.id
        db.session.commit()
    _restore(app, user)
    return user


def _restore(app, user) -> None:
    """Put back the project, the fuzzer's ownership and a file, whatever the last case changed."""
    with app.app_context():
        if db.session.get(Project, user.project_id) is None:
            db.session.add(Project(id=user.project_id, name="Fuzz", description="", owner_id=user.id))
            db.session.flush()
        for member_id, role in ((user.id, Role.OWNER), (user.member_id, Role.VIEWER)):
            membership = db.session.get(Membership, (user.project_id, member_id))
            if membership is None:
                db.session.add(Membership(project_id=user.project_id, user_id=member_id, role=role))
            else:
                membership.role = role
        exists = db.session.scalar(sa.select(ProjectFile.id).where(ProjectFile.project_id == user.project_id,
                                                                    ProjectFile.path == "readme.md"))
        if exists is None:
            db.session.add(ProjectFile(project_id=user.project_id, path="readme.md", content="hi", size=2))
        db.session.commit()


def _fresh_token(app, user) -> None:
    from workspace.auth import tokens
    from workspace.models import User

    with app.app_context():
        pair = tokens.issue_pair(db.session.get(User, user.id))
    user.headers = {"Authorization": f"Bearer {pair['access_token']}"}


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _strategy(operation, user):
    free = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    params = {p.name for p in operation.path_parameters}
    if "project_id" not in params:
        return free
    fixed = {"project_id": user.project_id}
    if "user_id" in params:
        fixed["user_id"] = user.member_id
    aimed = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)
    if "path" in params:
        aimed = aimed | operation.as_strategy(GenerationMode.POSITIVE,
                                              path_parameters={**fixed, "path": "readme.md"})
    return st.one_of(aimed, free)


def _check_documented_status(case, response) -> None:
    if not STRICT_TAGS & set(case.operation.definition.raw.get("tags", [])):
        return
    documented = set(case.operation.definition.raw.get("responses", {}))
    assert str(response.status_code) in documented, (
        f"{case.operation.label} answered {response.status_code}, documented: {sorted(documented)}")


def test_whole_api_survives_fuzzing(app, target):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures = []
    operations = list(_operations(schema))
    assert {tag for op in operations for tag in op.definition.raw.get("tags", [])} >= STRICT_TAGS

    for operation in operations:
        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=_strategy(operation, target))
        def run(case):
            _restore(app, target)
            response = case.call_and_validate(headers=target.headers, checks=CHECKS)
            _check_documented_status(case, response)
            if case.operation.path.endswith("/auth/logout") and response.status_code == 204:
                _fresh_token(app, target)  # the case revoked our token

        try:
            run()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
