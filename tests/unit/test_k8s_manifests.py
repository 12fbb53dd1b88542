"""deploy/k8s, rendered as `kubectl apply -k` would and validated against the Kubernetes API schemas that
kubernetes-validate ships (offline, strict: an unknown or misspelled field fails). Then what the schemas cannot
see: selectors that match, probes on the app's health routes, the image's numeric user, the Procfile's commands,
a worker grace period longer than the longest job, and references between the resources.

The kustomization is rendered by a small loader (resources, namespace, images: the only features it may use, which
the first test enforces); where `kubectl` is installed its own render is compared with the loader's.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml
from deploy_support import ROOT, procfile

from workspace.jobs.types import JOB_TYPES

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported by the major clouds; newer API servers accept it
LOADER_FEATURES = {"apiVersion", "kind", "namespace", "resources", "images"}


def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def render() -> list[dict]:
    """The kustomization's output: every resource file's documents, with the namespace and image overrides."""
    spec = kustomization()
    images = {image["name"]: image for image in spec.get("images", [])}
    documents = []
    for path in spec["resources"]:
        for document in yaml.safe_load_all((K8S / path).read_text()):
            if document["kind"] != "Namespace" and "namespace" in spec:
                document["metadata"]["namespace"] = spec["namespace"]
            for container in containers(document):
                name, _, tag = container["image"].partition(":")
                if name in images:
                    override = images[name]
                    container["image"] = f"{override.get('newName', name)}:{override.get('newTag', tag or 'latest')}"
            documents.append(document)
    return documents


def containers(document: dict) -> list[dict]:
    template = document.get("spec", {}).get("template")
    return template["spec"]["containers"] if template else []


def pod_spec(document: dict) -> dict:
    return document["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict]:
    return by_name(render())


def test_the_kustomization_uses_only_what_the_loader_renders_and_lists_every_manifest():
    spec = kustomization()
    assert set(spec) <= LOADER_FEATURES, f"the loader does not render {set(spec) - LOADER_FEATURES}"
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The Secret is created by the operator, never applied from the repository with placeholder values.
    assert set(spec["resources"]) == files - {"secret.example.yaml"}
    assert "secret.example.yaml" in files


def by_name(documents) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: the loader's render is used alone")
def test_kubectl_renders_what_the_loader_renders():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=True)
    assert by_name(yaml.safe_load_all(out.stdout)) == by_name(render())


def test_every_manifest_is_valid_against_the_kubernetes_schema():
    documents = render() + list(yaml.safe_load_all((K8S / "secret.example.yaml").read_text()))
    assert len(documents) == len(by_name(documents)) >= 9
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused():
    document = next(d for d in render() if d["kind"] == "Deployment")
    pod_spec(document)["containers"][0]["readinessprobe"] = {}  # misspelled: strict validation must catch it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_selectors_match_their_pods(rendered):
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for (kind, name), d in rendered.items()
              if kind == "Deployment"}
    for (kind, name), document in rendered.items():
        if kind == "Deployment":
            assert document["spec"]["selector"]["matchLabels"].items() <= labels[name].items(), name
    service = rendered[("Service", "workspace-web")]["spec"]
    pdb = rendered[("PodDisruptionBudget", "workspace-web")]["spec"]
    assert service["selector"].items() <= labels["workspace-web"].items()
    assert pdb["selector"]["matchLabels"].items() <= labels["workspace-web"].items()
    assert pdb["minAvailable"] < rendered[("Deployment", "workspace-web")]["spec"]["replicas"]
    [port] = pod_spec(rendered[("Deployment", "workspace-web")])["containers"][0]["ports"]
    assert service["ports"][0]["targetPort"] == port["name"]
    [rule] = rendered[("Ingress", "workspace-web")]["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "workspace-web" and backend["port"]["name"] == service["ports"][0]["name"]


def test_web_probes_health_and_runs_read_only_as_the_images_user(rendered):
    web = pod_spec(rendered[("Deployment", "workspace-web")])
    [container] = web["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "command" not in container  # the image's CMD: the Procfile's web command
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and container["resources"]["limits"]["memory"]


def test_every_pod_is_non_root_read_only_with_a_writable_tmp(rendered):
    dockerfile_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    compose_image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["image"]
    for (kind, name), document in rendered.items():
        if kind not in {"Deployment", "Job"}:
            continue
        spec = pod_spec(document)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == int(dockerfile_user), name
        [container] = spec["containers"]
        assert container["image"] == re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", compose_image), name  # one image
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
        assert {"name": "tmp", "emptyDir": spec["volumes"][0]["emptyDir"]} in spec["volumes"], name
        refs = {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]}
        assert refs == {"workspace-config", "workspace-secrets"}, name
    assert ("ConfigMap", "workspace-config") in rendered
    [secret] = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == "workspace-secrets"
    assert {"SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= set(secret["stringData"])
    assert all(len(v) < 16 or "<" in v or "PASSWORD" in v for v in secret["stringData"].values())  # no real secret


def test_worker_and_migration_run_the_procfile_commands(rendered):
    commands = procfile()
    [worker] = pod_spec(rendered[("Deployment", "workspace-worker")])["containers"]
    [migrate] = pod_spec(rendered[("Job", "workspace-migrate")])["containers"]
    assert worker["command"] == shlex.split(commands["worker"])
    assert migrate["command"] == shlex.split(commands["release"])
    assert pod_spec(rendered[("Job", "workspace-migrate")])["restartPolicy"] == "Never"


def test_worker_grace_period_outlasts_the_longest_job(rendered):
    grace = pod_spec(rendered[("Deployment", "workspace-worker")])["terminationGracePeriodSeconds"]
    assert grace > max(job.timeout for job in JOB_TYPES.values())


def test_ingress_pins_sessions_by_cookie_and_keeps_websockets_open(rendered):
    annotations = rendered[("Ingress", "workspace-web")]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "affinity-mode"] == "persistent"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert not [k for k in annotations if "whitelist" in k or "allowlist" in k]  # no address allow-list
