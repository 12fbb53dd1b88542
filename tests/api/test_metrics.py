"""`GET /metrics`: each counted thing moves its metric, labels stay bounded, shared values agree across processes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from teams import create_project

from workspace.extensions import db
from workspace.models import Job, JobStatus


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= set(lab))


def test_metrics_is_public_prometheus_text_and_documented(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE workspace_http_requests_total counter" in response.data
    spec = client.get("/openapi.json").json["paths"]["/metrics"]["get"]
    assert spec["security"] == []
    assert "text/plain" in spec["responses"]["200"]["content"]


def test_requests_are_counted_by_url_rule_and_status(client, make_user):
    user = make_user()
    before = scrape(client)
    for _ in range(3):
        assert client.get("/api/v1/auth/me", headers=user.headers).status_code == 200
    assert client.get("/api/v1/projects/123456").status_code == 401
    assert client.get("/no/such/page/xyz").status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    me = {"route": "/api/v1/auth/me", "method": "GET", "status": "200"}
    assert delta("workspace_http_requests_total", **me) == 3
    assert delta("workspace_http_request_duration_seconds_count", **me) == 3
    assert delta("workspace_http_requests_total", route="/api/v1/projects/<int:project_id>", status="401") == 1
    assert delta("workspace_http_requests_total", route="<unmatched>", status="404") == 1
    # Raw paths never become labels: label sets stay bounded whatever URLs clients try.
    assert not any("/no/such/page" in str(labels) or "123456" in str(labels) for _, labels in after)


def test_auth_successes_and_failures(make_app, make_user):
    client = make_app(RATELIMIT_ENABLED=False).test_client()
    user = make_user()
    before = scrape(client)
    login = "/api/v1/auth/login"
    assert client.post(login, json={"email": user.email, "password": user.password}).status_code == 200
    assert client.post(login, json={"email": user.email, "password": "wrong password"}).status_code == 401
    assert client.post(login, json={"email": "nobody@example.com", "password": "x"}).status_code == 401
    pair = client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh}"})
    assert pair.status_code == 200
    assert client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {user.refresh}"}).status_code == 401
    assert client.post("/api/v1/auth/signup", json={"email": user.email, "password": "long enough"}).status_code == 409
    after = scrape(client)

    def delta(kind, outcome):
        name = "workspace_auth_attempts_total"
        return value(after, name, kind=kind, outcome=outcome) - value(before, name, kind=kind, outcome=outcome)

    assert (delta("login", "success"), delta("login", "failure")) == (1, 2)
    assert (delta("refresh", "success"), delta("refresh", "failure")) == (1, 1)
    assert (delta("signup", "success"), delta("signup", "failure")) == (0, 1)


def test_project_list_cache_hits_and_misses(client, make_user):
    user = make_user()
    create_project(client, user)
    before = scrape(client)
    assert client.get("/api/v1/projects/", headers=user.headers).status_code == 200  # cold: miss, then stored
    assert client.get("/api/v1/projects/", headers=user.headers).status_code == 200  # warm: hit
    after = scrape(client)
    name = "workspace_project_list_cache_lookups_total"
    assert value(after, name, result="miss") - value(before, name, result="miss") == 1
    assert value(after, name, result="hit") - value(before, name, result="hit") == 1


def test_events_emitted_are_global_across_processes(make_app, make_user):
    """An event emitted by one process (here: a file write's FILE_CHANGE) shows on every process's scrape."""
    web_a, web_b = make_app().test_client(), make_app().test_client()
    user = make_user()
    project = create_project(web_a, user)
    before = scrape(web_b)
    response = web_a.put(f"/api/v1/projects/{project['id']}/files/readme.md", json={"content": "hello"},
                         headers=user.headers)
    assert response.status_code in (200, 201), response.json
    after_a, after_b = scrape(web_a), scrape(web_b)
    name = "workspace_events_emitted_total"
    assert value(after_b, name, event="FILE_CHANGE") - value(before, name, event="FILE_CHANGE") == 1
    assert value(after_a, name, event="FILE_CHANGE") == value(after_b, name, event="FILE_CHANGE")


def test_jobs_by_type_and_status_queue_depth_and_durations(app, make_app, make_user):
    """A job submitted on one process and run (claimed, completed) elsewhere: every process reports the same
    table counts, queue depth and duration histogram."""
    from workspace.jobs import service

    client = app.test_client()
    other = make_app().test_client()
    user = make_user()
    project = create_project(client, user)
    with app.app_context():
        job, created = service.submit(user.id, project["id"], "echo", {"n": 1})
        assert created
        job_id = job.id
    samples = scrape(other)
    assert value(samples, "workspace_jobs", type="echo", status="queued") == 1
    assert value(samples, "workspace_queue_jobs", state="queued") == 1

    with app.app_context():
        assert service.claim(job_id) is not None
        assert service.complete(job_id, 1, {"n": 1}) is not None
    samples = scrape(other)
    assert value(samples, "workspace_jobs", type="echo", status="queued") == 0
    assert value(samples, "workspace_jobs", type="echo", status="succeeded") == 1
    assert value(samples, "workspace_job_duration_seconds_count", type="echo", outcome="succeeded") == 1
    assert value(samples, "workspace_job_duration_seconds_bucket", type="echo", outcome="succeeded", le="+Inf") == 1


def test_job_types_outside_the_valid_shape_collapse_to_other(app, make_user):
    user = make_user()
    client = app.test_client()
    project = create_project(client, user)
    with app.app_context():
        db.session.add(Job(project_id=project["id"], user_id=user.id, type="Weird Type!" * 3, payload={},
                           status=JobStatus.FAILED, attempts=1, max_attempts=1))
        db.session.commit()
    samples = scrape(client)
    assert value(samples, "workspace_jobs", type="other", status="failed") == 1


def test_sockets_local_and_in_projects(make_app, make_user):
    """Connected sockets (this process) and sockets joined to project rooms (global, from presence)."""
    app = make_app(SOCKETIO_MESSAGE_QUEUE=None)
    client = app.test_client()
    user = make_user()
    project = create_project(client, user)
    before = scrape(client)
    sio = app.extensions["socketio"].test_client(app, auth={"token": user.access})
    try:
        assert sio.is_connected()
        ack = sio.emit("join", {"project_id": project["id"]}, callback=True)
        assert ack["ok"], ack
        during = scrape(client)
        assert value(during, "workspace_socket_connections") - value(before, "workspace_socket_connections") == 1
        assert value(during, "workspace_sockets_in_projects") == 1
        received = "workspace_socket_events_received_total"
        assert value(during, received, event="join") - value(before, received, event="join") == 1
        auth = "workspace_auth_attempts_total"
        assert (value(during, auth, kind="socket", outcome="success")
                - value(before, auth, kind="socket", outcome="success")) == 1
    finally:
        sio.disconnect()
    after = scrape(client)
    assert value(after, "workspace_socket_connections") == value(before, "workspace_socket_connections")
    assert value(after, "workspace_sockets_in_projects") == 0


def test_a_down_dependency_never_breaks_the_scrape(make_app):
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    samples = scrape(client)
    assert value(samples, "workspace_metrics_collect_errors_total", source="events") >= 1
    assert value(samples, "workspace_http_requests_total") >= 1


def test_recording_survives_redis_being_down(make_app):
    from workspace.observability import metrics

    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        metrics.event_emitted("FILE_CHANGE")  # no exception: the sample is lost, the work it counts is not
        metrics.job_finished("echo", "succeeded", 0.1)


def test_embedded_mode_has_no_queue_but_every_other_metric(make_app):
    client = make_app(REDIS_URL=None).test_client()
    assert client.get("/healthz").status_code == 200
    before = scrape(client)
    samples = scrape(client)
    assert not any(name.startswith("workspace_queue_jobs") for name, _ in samples)
    assert value(samples, "workspace_http_requests_total") >= 1
    errors = "workspace_metrics_collect_errors_total"
    assert value(samples, errors) == value(before, errors)  # every source read fine (earlier tests may have not)
