"""The deployment files, checked by reading them (Docker does not run here): Procfile, Procfile.dev, Dockerfile,
docker-compose.yml, deploy/haproxy.cfg, .env.example, app.json (Heroku), render.yaml (Render). Every command they run
must exist and be the Procfile's; every variable they set must be one the app reads; secrets have no defaults; the
proxy pins sessions by cookie. tests/live/test_proxy.py runs the proxy for real; tests/unit/test_k8s_manifests.py
checks deploy/k8s.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import json
import os
import re
import resource
import shlex
import shutil
import subprocess

import pytest
import yaml
from deploy_support import ROOT, procfile

from processes import BIN

CONFIG_READ = re.compile(r"_(?:env|int|bool|float)\(\s*\"([A-Z][A-Z0-9_]*)\"")
ENVIRON_READ = re.compile(r"environ(?:\.get|\.setdefault)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']|environ\[[\"']([A-Z0-9_]+)")
# Read by the container's base image or by compose itself, not by the app.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "REDIS_MAXMEMORY", "HTTP_BIND", "HTTP_PORT", "WORKSPACE_IMAGE"}
# Names the contract fixes whose reading config.py gains with the feature that needs them.
CONTRACT_PENDING = {"METRICS_TOKEN"}
# What compose refuses to start without: no default may be written for these anywhere.
REQUIRED_SECRETS = {"SECRET_KEY", "JWT_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"}


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
    # An exact release, not a floating tag; the same minor version Heroku and Render build with (.python-version).
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", lines[0]), lines[0]
    assert lines[0].startswith(f"FROM python:{read('.python-version').strip()}.")
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY")]
    deps = next(i for i, line in enumerate(lines) if line.startswith("COPY requirements.txt"))
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install -r requirements.txt"))
    code = next(i for i, line in enumerate(lines) if re.match(r"COPY (--chown=\S+ )?\. \.", line))
    assert deps == copies[0] < install < code  # the dependency layer is cached across code changes
    user = [line.split()[1] for line in lines if line.startswith("USER")]
    # Numeric, so Kubernetes' runAsNonRoot can verify it; the same uid deploy/k8s runs as.
    assert user and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user[-1]), user
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
    for name in workers:
        assert same_command(services[name]["command"], commands["worker"]), name
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["volumes"], name
        assert services[name]["volumes"][0].split(":")[0] in compose()["volumes"]
    proxy = services["proxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    assert set(proxy["depends_on"]) == set(webs)


def test_compose_builds_one_image_once_and_every_app_service_runs_it():
    services = compose()["services"]
    app_services = [name for name, s in services.items() if name == "migrate" or name[:-1] in {"web", "worker"}]
    assert len(app_services) == 5
    assert [name for name, s in services.items() if "build" in s] == ["migrate"]
    assert services["migrate"]["build"] == "."
    assert len({services[name]["image"] for name in app_services}) == 1


def test_compose_publishes_on_loopback_only_by_default():
    for name, service in compose()["services"].items():
        for mapping in service.get("ports", []):
            host = re.sub(r"\$\{HTTP_BIND:-([^}]*)\}", r"\1", mapping).split(":")[0]
            assert host == "127.0.0.1", f"{name} publishes {mapping}"
        assert "network_mode" not in service, name


def test_compose_refuses_to_start_without_secrets_and_has_no_default_for_them():
    text = read("docker-compose.yml")
    for name in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} not wired"
        assert all(use.startswith(":?") for use in uses), f"{name} must be ${{{name}:?...}}, got {uses}"
    env = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", read(".env.example"), re.M))
    for name in REQUIRED_SECRETS:
        assert env.get(name) == "", f".env.example must leave {name} empty (compose then refuses to start)"
    assert "CORS_ORIGINS" not in env, "CORS_ORIGINS must stay unset by default (same-origin in production)"
    assert compose()["x-app"]["environment"]["CORS_ORIGINS"] == "${CORS_ORIGINS:-}"


def test_redis_has_a_password_a_memory_cap_and_evicts_nothing():
    redis = compose()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--requirepass" in command and "--maxmemory " in command
    # The queue, revocations and limits live in Redis: eviction would drop them silently.
    assert "--maxmemory-policy noeviction" in command
    assert "REDIS_PASSWORD" in redis["environment"]["REDISCLI_AUTH"]
    assert "${REDIS_PASSWORD" in compose()["x-app"]["environment"]["REDIS_URL"]


def test_every_service_rotates_logs_runs_under_init_and_raises_nofile_where_it_holds_sockets():
    services = compose()["services"]
    for name, service in services.items():
        assert service["init"] is True, name
        assert service["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(service["logging"]["options"]), name
        if name not in {"postgres", "redis"}:
            assert service["ulimits"]["nofile"]["soft"] >= 65536, name


def test_compose_sets_only_variables_the_app_reads():
    known = app_variables()
    services = compose()["services"]
    for name, service in services.items():
        if name in {"postgres", "redis", "proxy"}:
            continue
        unknown = set(service["environment"]) - known - CONTRACT_PENDING
        assert not unknown, f"{name} sets {unknown}, which nothing reads"
        assert service["environment"]["APP_ENV"] == "production"
    host_vars = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", read("docker-compose.yml")))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", read(".env.example"), re.M))
    assert host_vars <= documented, f"set them in .env.example: {host_vars - documented}"


def test_env_example_lists_every_variable_and_only_real_ones():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", read(".env.example"), re.M))
    known = app_variables()
    assert known - documented == set(), f"missing from .env.example: {sorted(known - documented)}"
    unread = documented - known - COMPOSE_ONLY - CONTRACT_PENDING
    assert unread == set(), f"read by nothing: {sorted(unread)}"


def haproxy_directives() -> list[str]:
    """deploy/haproxy.cfg without comments, one directive per line."""
    return [line.split("#", 1)[0].strip() for line in read("deploy/haproxy.cfg").splitlines()
            if line.split("#", 1)[0].strip()]


def test_proxy_pins_sessions_by_cookie_over_the_compose_web_processes():
    lines = haproxy_directives()
    assert "balance roundrobin" in lines  # new sessions spread; never `balance source`, which NAT collapses
    assert any(re.fullmatch(r"cookie \S+ insert indirect nocache.*", line) for line in lines)
    servers = [line.split() for line in lines if line.startswith("server ")]
    proxy_env = compose()["services"]["proxy"]["environment"]
    webs = sorted(name for name in compose()["services"] if name.startswith("web"))
    assert [server[1] for server in servers] == webs
    for _, name, address, *options in servers:
        variable, default = re.fullmatch(r'"\$\{(\w+)-([^}]+)\}"', address).groups()
        assert default == proxy_env[variable] == f"{name}:8000"
        assert options[options.index("cookie") + 1] == name
    # Health-checked, redispatched on failure, names re-resolved while running.
    default_server = next(line for line in lines if line.startswith("default-server "))
    assert "check" in default_server.split() and "resolvers" in default_server.split()
    assert "option redispatch 1" in lines and "parse-resolv-conf" in lines
    assert "option httpchk GET /healthz" in lines


def test_proxy_forwards_host_untouched_and_overwrites_forwarded_headers():
    lines = haproxy_directives()
    assert not [line for line in lines if re.search(r"set-header Host\b|replace-header Host\b|del-header Host\b", line)]
    assert "option forwardfor" in lines
    assert "http-request set-header X-Forwarded-Host %[req.hdr(host)]" in lines
    assert any(line.startswith("http-request set-header X-Forwarded-Proto") for line in lines)
    assert "timeout tunnel 1h" in lines  # idle WebSockets are not cut after the 60 s request timeouts


def test_metrics_are_not_public_through_the_proxy():
    lines = haproxy_directives()
    rule = next(line for line in lines if "/metrics" in line)
    assert rule.startswith("http-request deny") and "authorization" in rule
    assert not [line for line in lines if "src " in line or "allow" in line.split()]  # no address allow-list


@pytest.mark.skipif(shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None,
                    reason="haproxy not installed (tests/live/test_proxy.py requires it)")
def test_haproxy_accepts_the_config():
    haproxy = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    # With the file's own defaults, as compose runs it (the compose names do not resolve here: a warning, not an error).
    check = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env={}, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


FD_CHECK = """
import resource, sys
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
settings = {}
exec(compile(open("gunicorn.conf.py").read(), "gunicorn.conf.py", "exec"), settings)
class Log:
    def warning(self, message, *args):
        print("WARNING " + message % args)
class Server:
    log = Log()
settings["on_starting"](Server())
print(settings["worker_connections"], resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # a test may lower it in a child process, not raise it
NEEDED = 12_000 + 512  # the default worker_connections, plus the process's own descriptors
REACHABLE = NEEDED if HARD == resource.RLIM_INFINITY else min(NEEDED, HARD)


@pytest.mark.parametrize(("soft", "hard", "raised_to", "warned"), [
    # the usual soft limit: raised to what the sockets need, as far as the hard limit allows
    (1024, HARD, REACHABLE, REACHABLE < NEEDED),
    (1024, 4096, 4096, True),  # the hard limit is too low: as far as it goes, and said at start
    (HARD, HARD, HARD, REACHABLE < NEEDED),  # already as high as it goes: never lowered
])
def test_gunicorn_raises_the_file_descriptor_limit_its_worker_connections_need(soft, hard, raised_to, warned):
    """Each socket is a connection slot and a file descriptor: a soft `ulimit -n` of 1,024 would make the worker
    fail accepts with EMFILE far below worker_connections (which must leave room for requests beside 10,000 sockets:
    a full pool accepts nothing, not even /healthz)."""
    env = {k: v for k, v in os.environ.items() if k != "WORKER_CONNECTIONS"}
    done = subprocess.run([str(BIN / "python"), "-c", FD_CHECK, str(soft), str(hard)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    *warnings, last = done.stdout.strip().splitlines()
    connections, limit = map(int, last.split())
    assert connections > 10_000 and limit == raised_to
    assert bool(warnings) is warned and all("file-descriptor limit" in w for w in warnings)


def test_gunicorn_keeps_its_heartbeat_off_the_root_filesystem():
    assert re.search(r'^worker_tmp_dir = "/dev/shm"', read("gunicorn.conf.py"), re.M)


def test_procfile_dev_is_the_procfile_without_release():
    dev = {}
    for line in read("Procfile.dev").splitlines():
        name, _, command = line.partition(":")
        dev[name.strip()] = command.strip()
    assert dev == {name: command for name, command in procfile().items() if name != "release"}


def test_heroku_builds_python_only_with_postgres_redis_and_generated_secrets():
    app = json.loads(read("app.json"))
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    # Nothing at the root that makes Heroku (or Render) detect Node: the JavaScript lives in js/.
    for name in ("package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "node_modules"):
        assert not (ROOT / name).exists(), f"{name} at the root would trigger Node detection"
    assert (ROOT / "js" / "package.json").is_file()
    assert re.fullmatch(r"3\.11", read(".python-version").strip())
    plans = [addon["plan"].split(":")[0] for addon in app["addons"]]
    assert sorted(plans) == ["heroku-postgresql", "heroku-redis"]
    assert set(app["formation"]) == {"web", "worker"}
    assert "release" in procfile()  # Heroku's release phase runs the Procfile's release line
    env = app["env"]
    assert env["APP_ENV"]["value"] == "production"
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        assert env[name] == {**env[name], "generator": "secret"} and "value" not in env[name], name
    assert set(env) <= app_variables() | CONTRACT_PENDING


def test_render_blueprint_runs_the_procfile_commands_with_shared_generated_secrets():
    blueprint = yaml.safe_load(read("render.yaml"))
    services = {s["type"]: s for s in blueprint["services"]}
    commands = procfile()
    assert services["web"]["startCommand"] == commands["web"]
    assert services["web"]["preDeployCommand"] == commands["release"]
    assert services["web"]["healthCheckPath"] == "/readyz"
    # No sticky sessions on Render: more than one instance needs websocket-only clients (docs/deployment.md).
    assert services["web"]["numInstances"] == 1
    assert services["worker"]["startCommand"] == commands["worker"]
    assert services["keyvalue"]["maxmemoryPolicy"] == "noeviction"
    [group] = blueprint["envVarGroups"]
    generated = {v["key"] for v in group["envVars"] if v.get("generateValue")}
    assert {"SECRET_KEY", "JWT_SECRET_KEY"} <= generated
    for kind in ("web", "worker"):
        variables = services[kind]["envVars"]
        assert {"fromGroup": group["name"]} in variables, kind  # the same keys in both services
        wired = {v["key"]: v for v in variables if "key" in v}
        assert wired["DATABASE_URL"]["fromDatabase"]["name"] == blueprint["databases"][0]["name"]
        assert wired["REDIS_URL"]["fromService"]["name"] == services["keyvalue"]["name"]
        assert set(wired) <= app_variables(), kind
