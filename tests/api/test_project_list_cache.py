"""The per-user project list cache: HIT/MISS, invalidation of every affected member on every change, across app
instances (processes), and the read-during-write race that the generation tag closes."""

from __future__ import annotations

from teams import PROJECTS, create_project, invite, make_team, project_url

from workspace.auth import tokens
from workspace.projects import cache


def listing(client, user, query=""):
    response = client.get(PROJECTS + query, headers=user.headers)
    assert response.status_code == 200
    return response


def names(response):
    return [p["name"] for p in response.json["items"]]


def warm(client, *users):
    for user in users:
        listing(client, user)
        assert listing(client, user).headers["X-Cache"] == "HIT"


def test_second_read_is_a_hit_with_the_same_body(client, make_user):
    ada = make_user()
    create_project(client, ada)
    first = listing(client, ada)
    second = listing(client, ada)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.json == second.json
    assert second.content_type == "application/json"


def test_pages_are_cached_separately(client, make_user):
    ada = make_user()
    for i in range(3):
        create_project(client, ada, name=f"p{i}")
    assert names(listing(client, ada, "?per_page=2")) == ["p2", "p1"]
    assert names(listing(client, ada, "?per_page=2&page=2")) == ["p0"]
    assert listing(client, ada, "?per_page=2&page=2").headers["X-Cache"] == "HIT"


def test_no_cache_request_header_reads_the_database(client, make_user):
    ada = make_user()
    warm(client, ada)
    response = client.get(PROJECTS, headers={**ada.headers, "Cache-Control": "no-cache"})
    assert response.headers["X-Cache"] == "MISS"


def test_ttl_zero_disables_the_cache(make_app, make_user):
    client = make_app(PROJECT_LIST_CACHE_SECONDS=0).test_client()
    ada = make_user()
    assert [listing(client, ada).headers["X-Cache"] for _ in range(2)] == ["MISS", "MISS"]


def test_create_invalidates_the_creator(client, make_user):
    ada = make_user()
    warm(client, ada)
    create_project(client, ada, name="fresh")
    assert names(listing(client, ada)) == ["fresh"]


def test_update_invalidates_every_member(client, make_user):
    team = make_team(client, make_user)
    warm(client, team.owner, team.collaborator, team.viewer)
    client.patch(project_url(team.project_id), json={"name": "Renamed"}, headers=team.owner.headers)
    for user in (team.owner, team.collaborator, team.viewer):
        response = listing(client, user)
        assert response.headers["X-Cache"] == "MISS" and names(response) == ["Renamed"]


def test_delete_invalidates_every_member(client, make_user):
    team = make_team(client, make_user)
    warm(client, team.owner, team.collaborator, team.viewer)
    client.delete(project_url(team.project_id), headers=team.owner.headers)
    for user in (team.owner, team.collaborator, team.viewer):
        assert names(listing(client, user)) == []


def test_membership_changes_invalidate_the_affected_member(client, make_user):
    team = make_team(client, make_user)
    warm(client, team.other, team.viewer)
    invite(client, team.owner, team.project_id, team.other, "viewer")
    assert [p["role"] for p in listing(client, team.other).json["items"]] == ["viewer"]

    client.patch(project_url(team.project_id, "collaborators", team.viewer.id), json={"role": "collaborator"},
                 headers=team.owner.headers)
    assert [p["role"] for p in listing(client, team.viewer).json["items"]] == ["collaborator"]

    warm(client, team.other)
    client.delete(project_url(team.project_id, "collaborators", team.other.id), headers=team.owner.headers)
    assert listing(client, team.other).json["items"] == []


def test_unaffected_users_keep_their_cache(client, make_user):
    team = make_team(client, make_user)
    warm(client, team.viewer)
    invite(client, team.owner, team.project_id, team.other, "viewer")
    assert listing(client, team.viewer).headers["X-Cache"] == "HIT"


def test_a_write_through_one_instance_is_seen_by_the_next_read_on_another(make_app, make_user):
    """Two app instances = two processes sharing PostgreSQL and Redis."""
    first, second = make_app().test_client(), make_app().test_client()
    ada, bob = make_user(), make_user()
    project = create_project(first, ada, name="v1")
    warm(second, ada, bob)
    steps = [
        lambda: first.patch(project_url(project["id"]), json={"name": "v2"}, headers=ada.headers),
        lambda: first.post(project_url(project["id"], "collaborators"), json={"email": bob.email, "role": "viewer"},
                           headers=ada.headers),
        lambda: first.patch(project_url(project["id"], "collaborators", bob.id), json={"role": "collaborator"},
                            headers=ada.headers),
        lambda: first.post(PROJECTS, json={"name": "v3"}, headers=ada.headers),
        lambda: first.delete(project_url(project["id"]), headers=ada.headers),
    ]
    expected = [(["v2"], []), (["v2"], [("v2", "viewer")]), (["v2"], [("v2", "collaborator")]),
                (["v3", "v2"], [("v2", "collaborator")]), (["v3"], [])]
    for step, (ada_sees, bob_sees) in zip(steps, expected, strict=True):
        assert step().status_code < 300
        assert names(listing(second, ada)) == ada_sees
        assert [(p["name"], p["role"]) for p in listing(second, bob).json["items"]] == bob_sees
        warm(second, ada, bob)


def test_a_reader_that_raced_a_write_cannot_publish_a_stale_page(app, make_app, make_user):
    """The race: a reader reads the generation and the database, a write commits and bumps, then the reader stores
    its (now stale) page. The stale page carries the old generation and is never served."""
    client, writer = app.test_client(), make_app().test_client()
    ada = make_user()
    project = create_project(client, ada, name="before")
    with app.test_request_context():
        generation, _ = cache.lookup(ada.id, 1, 20)
        stale_body = listing(client, ada, "?page=1&per_page=20").get_data(as_text=True)
        writer.patch(project_url(project["id"]), json={"name": "after"}, headers=ada.headers)
        cache.store(ada.id, 1, 20, generation, stale_body)  # the slow reader finishes last
    response = listing(client, ada, "?page=1&per_page=20")
    assert response.headers["X-Cache"] == "MISS"
    assert names(response) == ["after"]


def test_embedded_mode_uses_the_in_process_redis(make_app, make_user):
    client = make_app(REDIS_URL=None).test_client()
    ada = make_user()
    create_project(client, ada)
    assert [listing(client, ada).headers["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]


def test_cache_failures_degrade_to_the_database(make_app, caplog):
    """Redis unreachable: lookups are misses, stores and invalidations are logged, nothing raises."""
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with app.test_request_context():
        assert cache.lookup(7, 1, 20) == ("", None)
        cache.store(7, 1, 20, "", "{}")  # unknown generation: not stored
        cache.store(7, 1, 20, "3", "{}")
        cache.invalidate([7, 8])
    assert "could not invalidate the project list cache of users [7, 8]" in caplog.text
    assert "project list cache unreachable" in caplog.text


def _redis_commands(app, monkeypatch) -> list[str]:
    """Record the name of every command sent on a connection of the app's Redis pool from now on (through the client
    or directly, `redis_store.command`)."""
    sent: list[str] = []
    connection_class = app.extensions["redis_store"]["client"].connection_pool.connection_class
    original = connection_class.send_command

    def recording(self, *args, **options):
        sent.append(args[0])
        return original(self, *args, **options)

    monkeypatch.setattr(connection_class, "send_command", recording)
    return sent


def test_a_cached_page_is_read_in_the_token_checks_round_trip(app, client, make_user, monkeypatch):
    ada = make_user()
    create_project(client, ada)
    warm(client, ada)
    sent = _redis_commands(app, monkeypatch)
    response = listing(client, ada, "?per_page=20")
    assert response.headers["X-Cache"] == "HIT" and sent == ["MGET"]
    # A query the raw parse cannot read: the token is checked alone, and the schema refuses the query as before.
    sent.clear()
    assert client.get(PROJECTS + "?page=one", headers=ada.headers).status_code == 422
    assert sent == ["EXISTS"]


def test_keys_not_read_with_the_token_check_are_not_prefetched(app):
    with app.test_request_context():
        assert tokens.prefetched(["never-read"]) is None


def test_a_revoked_token_gets_no_cached_page(client, make_user):
    ada = make_user()
    warm(client, ada)
    assert client.post("/api/v1/auth/logout", headers=ada.headers).status_code == 204
    response = client.get(PROJECTS, headers=ada.headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "token_revoked"


def test_a_revoked_family_gets_no_cached_page(client, make_user):
    ada = make_user()
    warm(client, ada)
    logout = client.post("/api/v1/auth/logout", json={"refresh_token": ada.refresh}, headers=ada.headers)
    assert logout.status_code == 204
    response = client.get(PROJECTS, headers=ada.headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "token_revoked"


def test_the_list_fails_closed_when_the_revocation_store_is_down(make_app, make_user):
    ada = make_user()
    response = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get(PROJECTS, headers=ada.headers)
    assert response.status_code == 503 and response.json["error"]["code"] == "service_unavailable"
