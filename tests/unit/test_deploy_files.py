"""The deployment files, checked by reading them (Docker does not run here): Procfile, Dockerfile, docker-compose.yml,
deploy/nginx.conf, .env.example. Every command they run must exist and be the Procfile's; every variable they set
must be one the app reads; the proxy must be sticky and pass WebSocket upgrades.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import json
import re
import shlex

import pytest
import yaml
from deploy_support import ROOT, procfile

from processes import BIN

CONFIG_READ = re.compile(r"_(?:env|int|bool|float)\(\s*\"([A-Z][A-Z0-9_]*)\"")
ENVIRON_READ = re.compile(r"environ(?:\.get|\.setdefault)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']|environ\[[\"']([A-Z0-9_]+)")
# Read by the container's base image or by compose itself, not by the app.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "HTTP_PORT"}


def read(path: str) -> str:
    return (ROOT / path).read_text()


def app_variables() -> set[str]:
    """Every environment variable the code reads: config.py for the app, gunicorn.conf.py and wsgi.py for the server."""
    names = set(CONFIG_READ.findall(read("config.py")))
    for path in ("gunicorn.conf.py", "wsgi.py"):
        names |= {a or b for a, b in ENVIRON_READ.findall(read(path))}
    return names


def compose() -> dict:
    return yaml.safe_load(read("docker-compose.yml"))


def unescape(command: str) -> str:
    """A compose string as the container sees it (`$$` is compose's escape for a literal `$`)."""
    return command.replace("$$", "$")


def same_command(compose_command: list[str], procfile_command: str) -> bool:
    """A compose exec-form command, or `["sh", "-c", "exec <cmd>"]` when it needs the shell, runs the Procfile's."""
    if compose_command[:2] == ["sh", "-c"]:
        return unescape(compose_command[2]).removeprefix("exec ") == procfile_command
    return compose_command == shlex.split(procfile_command)


def check_runnable(command: str) -> None:
    """The executable exists in the environment the image installs, and what it is pointed at exists."""
    argv = shlex.split(command)
    executable = argv[0]
    assert executable == "python" or (BIN / executable).exists(), f"{executable} is not installed"
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "-m":
            assert importlib.util.find_spec(value) is not None, f"no module {value}"
        if flag == "--app":
            module, _, factory = value.partition(":")
            assert callable(getattr(importlib.import_module(module), factory)), value
        if flag == "-c" and executable == "gunicorn":
            assert (ROOT / value).is_file(), value
    if executable == "gunicorn":
        module, _, attr = argv[-1].partition(":")
        tree = ast.parse(read(f"{module}.py"))  # parsed, not imported: wsgi.py monkey-patches on import
        assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
        assert attr in assigned, f"{module}.py defines no {attr}"
    if executable == "flask" and argv[3:5] == ["db", "upgrade"]:
        assert (ROOT / "migrations" / "env.py").is_file()


def test_procfile_has_the_three_processes_and_each_command_exists():
    commands = procfile()
    assert {"release", "web", "worker"} <= set(commands)
    assert shlex.split(commands["release"])[-2:] == ["db", "upgrade"]
    assert shlex.split(commands["web"])[0] == "gunicorn"
    for command in commands.values():
        check_runnable(command)


def test_web_command_uses_the_gunicorn_settings_with_one_eventlet_worker():
    web = shlex.split(procfile()["web"])
    assert web[web.index("-c") + 1] == "gunicorn.conf.py"
    settings = read("gunicorn.conf.py")
    assert re.search(r"^workers = 1$", settings, re.M)
    assert '"eventlet"' in settings and "PORT" in settings


def test_dockerfile_is_slim_non_root_cached_and_runs_the_procfile_web_command():
    joined = re.sub(r"\\\n\s*", " ", read("Dockerfile"))  # one line per instruction
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    instructions = [line.split()[0] for line in lines]
    assert lines[0].startswith("FROM python:3.11-slim")
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY")]
    deps = next(i for i, line in enumerate(lines) if line.startswith("COPY requirements.txt"))
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install -r requirements.txt"))
    code = next(i for i, line in enumerate(lines) if re.match(r"COPY (--chown=\S+ )?\. \.", line))
    assert deps == copies[0] < install < code  # the dependency layer is cached across code changes
    user = [line.split()[1] for line in lines if line.startswith("USER")]
    assert user and user[-1] not in {"root", "0"}
    assert instructions.index("USER") < instructions.index("CMD")
    assert "/healthz" in lines[instructions.index("HEALTHCHECK")]
    cmd = json.loads(lines[instructions.index("CMD")].removeprefix("CMD"))  # exec form: gunicorn is PID 1
    assert cmd == shlex.split(procfile()["web"])


def test_dockerignore_keeps_what_the_image_needs():
    patterns = [p.strip() for p in read(".dockerignore").splitlines() if p.strip() and not p.startswith("#")]
    needed = ["requirements.txt", "wsgi.py", "gunicorn.conf.py", "config.py", "workspace/__init__.py",
              "migrations/env.py", "workspace/web/static/index.html"]
    for path in needed:
        assert (ROOT / path).exists(), path
        excluded = [p for p in patterns if not p.startswith("!") and (fnmatch.fnmatch(path, p)
                                                                      or path.startswith(p.rstrip("/") + "/"))]
        assert not excluded, f"{path} excluded by {excluded}"
    assert ".env" in patterns and ".git" in patterns and ".venv" in patterns


def test_compose_runs_the_procfile_commands_with_two_webs_two_workers_and_a_release():
    services = compose()["services"]
    commands = procfile()
    assert same_command(services["migrate"]["command"], commands["release"])
    webs = [name for name, s in services.items() if name.startswith("web")]
    workers = [name for name, s in services.items() if name.startswith("worker")]
    assert len(webs) == 2 and len(workers) == 2
    for name in webs:
        assert "command" not in services[name]  # the image's CMD, which is the Procfile's web command
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["build"] == "."
    for name in workers:
        assert same_command(services[name]["command"], commands["worker"]), name
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["volumes"], name
        assert services[name]["volumes"][0].split(":")[0] in compose()["volumes"]
    proxy = services["proxy"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert set(proxy["depends_on"]) == set(webs)


def test_compose_sets_only_variables_the_app_reads():
    known = app_variables()
    services = compose()["services"]
    for name, service in services.items():
        if name in {"postgres", "redis", "proxy"}:
            continue
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets {unknown}, which nothing reads"
        assert service["environment"]["APP_ENV"] == "production"
    host_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", read("docker-compose.yml")))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", read(".env.example"), re.M))
    assert host_vars <= documented, f"set them in .env.example: {host_vars - documented}"


def test_env_example_lists_every_variable_and_only_real_ones():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", read(".env.example"), re.M))
    known = app_variables()
    assert known - documented == set(), f"missing from .env.example: {sorted(known - documented)}"
    assert documented - known - COMPOSE_ONLY == set(), f"read by nothing: {sorted(documented - known - COMPOSE_ONLY)}"


@pytest.fixture(scope="module")
def nginx() -> str:
    # Comments out: only directives count.
    return "\n".join(line.split("#", 1)[0] for line in read("deploy/nginx.conf").splitlines())


def blocks(config: str, header: str) -> list[str]:
    """The bodies of every `header ... { ... }` block (braces balanced)."""
    bodies = []
    for match in re.finditer(re.escape(header) + r"[^{;]*\{", config):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(config[i], 0)
            i += 1
        bodies.append(config[match.end():i - 1])
    return bodies


def test_nginx_is_sticky_over_the_compose_web_processes(nginx):
    [upstream] = blocks(nginx, "upstream")
    assert re.search(r"^\s*ip_hash;", upstream, re.M)
    servers = set(re.findall(r"^\s*server\s+(\S+?)(?:\s|;)", upstream, re.M))
    webs = {name for name in compose()["services"] if name.startswith("web")}
    assert servers == {f"{name}:8000" for name in webs}
    assert nginx.count("{") == nginx.count("}")


def test_nginx_passes_websocket_upgrades_and_client_headers_in_every_location(nginx):
    [socketio] = [b for b in blocks(nginx, "location") if "$http_upgrade" in b]
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", socketio)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", socketio)
    assert "proxy_buffering off;" in socketio
    assert re.search(r"proxy_read_timeout\s+\d{3,}s;", socketio)  # idle sockets are not cut after 60 s
    assert "proxy_http_version 1.1;" in nginx
    assert "location /socket.io/" in nginx
    # proxy_set_header is inherited only by locations that set none: each location lists the whole set.
    for body in blocks(nginx, "location"):
        if "proxy_pass" in body:
            for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
                assert re.search(rf"proxy_set_header\s+{header}\s", body), f"{header} missing in a location"


def test_metrics_are_not_public_through_the_proxy(nginx):
    [metrics] = blocks(nginx, "location = /metrics")
    assert "deny all;" in metrics
