"""The Helm chart, tested with the real helm: lint, render, validate every object against the
Kubernetes schemas, reject bad values, RBAC exactly as the operator's table, user roles, the
worker defaults handed to the operator, CRDs in sync."""

import json
import pathlib
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kamera"
HELM = str(ROOT / ".tools" / "bin" / "helm")
HERE = pathlib.Path(__file__).parent
K8S_VERSION = "1.37.0"

# The Prometheus Operator's CRDs are not in the Kubernetes schemas: check the fields we set.
MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"enum": ["ServiceMonitor", "PodMonitor"]},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "namespaceSelector": {"type": "object"},
                "endpoints": {"type": "array", "minItems": 1},
                "podMetricsEndpoints": {"type": "array", "minItems": 1},
            },
            "required": ["selector"],
        },
    },
}


def helm(*args, check=True):
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=check)


def render(*values):
    args = ["template", "kamera", str(CHART), "--namespace", "kamera"]
    for v in values:
        args += ["-f", str(v)]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_lint_strict():
    result = helm("lint", "--strict", str(CHART), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    result = helm("lint", "--strict", str(CHART), "-f", str(HERE / "values-all.yaml"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [[], [HERE / "values-all.yaml"]], ids=["defaults", "everything-on"])
def test_every_rendered_object_is_valid(values):
    objects = render(*values)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ServiceAccount", "Service"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            jsonschema.validate(obj, MONITOR_SCHEMA)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")


def test_everything_on_renders_every_optional_object():
    objects = render(HERE / "values-all.yaml")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Role") == 2 and kinds.count("RoleBinding") == 2  # watched ns + lease
    # A single watched namespace needs no cluster-wide rights for the operator; the only
    # ClusterRoles are the user role templates, which bind nobody.
    assert "ClusterRoleBinding" not in kinds
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"} == {"kamera-view", "kamera-edit"}
    assert {"ServiceMonitor", "PodMonitor"} <= set(kinds)
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 2
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["tolerations"][0]["key"] == "dedicated"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["KAMERA_WORKER_IMAGE"] == "registry.example/kamera-worker:1.2.3"
    assert env["KAMERA_NAMESPACE"] == "cameras"


def test_defaults_are_hardened():
    deploy = next(o for o in render() if o["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["args"] == ["run"]


@pytest.mark.parametrize("bad", sorted((HERE / "bad-values").glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_are_rejected_by_the_schema(bad):
    # Each file's first line names where it must be rejected, so it cannot pass for another reason.
    where = bad.read_text().splitlines()[0].removeprefix("# rejected at ")
    result = helm("template", "kamera", str(CHART), "-f", str(bad), check=False)
    assert result.returncode != 0, f"{bad.name} was accepted"
    assert "schema" in result.stderr.lower(), result.stderr
    assert where in result.stderr or where.strip("/").replace("/", ".") in result.stderr, result.stderr


def operator_env(objects):
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    return {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}


def worker_defaults(objects):
    return json.loads(operator_env(objects)["KAMERA_WORKER_DEFAULTS"])


def test_worker_defaults_are_the_documented_resources_by_default():
    objects = render()
    assert worker_defaults(objects) == {
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    }
    assert operator_env(objects)["KAMERA_MAX_CONCURRENT_RESTARTS"] == "2"


def test_worker_defaults_carry_every_worker_value():
    values = yaml.safe_load((HERE / "values-all.yaml").read_text())
    objects = render(HERE / "values-all.yaml")
    worker = values["worker"]
    assert worker_defaults(objects) == {
        "resources": worker["resources"],
        "imagePullSecrets": worker["imagePullSecrets"],
        "priorityClassName": worker["priorityClassName"],
    }
    assert operator_env(objects)["KAMERA_MAX_CONCURRENT_RESTARTS"] == str(values["operator"]["maxConcurrentRestarts"])


def test_worker_defaults_are_a_valid_pod_spec():
    # The operator reads them as ResourceRequirements, [LocalObjectReference] and a string: put
    # them in a pod and let the Kubernetes schema judge.
    defaults = worker_defaults(render(HERE / "values-all.yaml"))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "front-door"},
        "spec": {
            "containers": [{"name": "worker", "image": "worker", "resources": defaults["resources"]}],
            "imagePullSecrets": defaults["imagePullSecrets"],
            "priorityClassName": defaults["priorityClassName"],
        },
    }
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_empty_worker_defaults_are_left_out(tmp_path):
    empty = tmp_path / "no-worker-defaults.yaml"
    empty.write_text("worker: {resources: null, imagePullSecrets: [], priorityClassName: ''}\n")
    assert worker_defaults(render(empty)) == {}
    empty.write_text("worker: {resources: {limits: null}}\n")
    assert worker_defaults(render(empty)) == {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}


def test_max_concurrent_restarts_is_a_plain_integer(tmp_path):
    many = tmp_path / "many-restarts.yaml"
    many.write_text("operator: {maxConcurrentRestarts: 1000000}\n")
    # helm reads YAML numbers as floats; a float would print as 1e+06.
    assert operator_env(render(many))["KAMERA_MAX_CONCURRENT_RESTARTS"] == "1000000"


OPERATOR_ROLE = "kamera-operator"  # the release is "kamera" in render()


def rules_of(objects, kind, name):
    """(apiGroup, resource, verb) triples granted by the one role of this kind and exact name."""
    [role] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return {(g, res, v) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}


def table_rules(section):
    table = yaml.safe_load((CHART / "files" / "rbac.yaml").read_text())
    return {(g, res, v) for r in table[section] for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}


def test_rbac_is_exactly_the_operators_table():
    objects = render()
    assert rules_of(objects, "ClusterRole", OPERATOR_ROLE) == table_rules("watched")
    assert rules_of(objects, "Role", f"{OPERATOR_ROLE}-leader-election") == table_rules("leaderElection")
    for o in objects:
        for r in o.get("rules", []):
            assert "*" not in r["verbs"] and "*" not in r["resources"] and "*" not in r["apiGroups"]


def test_rbac_in_one_watched_namespace_is_exactly_the_operators_table():
    objects = render(HERE / "values-all.yaml")
    role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == OPERATOR_ROLE)
    assert role["metadata"]["namespace"] == "cameras"
    assert rules_of(objects, "Role", OPERATOR_ROLE) == table_rules("watched")
    assert rules_of(objects, "Role", f"{OPERATOR_ROLE}-leader-election") == table_rules("leaderElection")


# What the operator writes with server-side apply. An apply of an object that does not exist yet
# is authorised as `create`, one that does as `patch`: each needs both.
APPLIED = {("apps", "deployments"), ("", "services"), ("", "persistentvolumeclaims"), ("", "secrets")}


@pytest.mark.parametrize(
    "values, kind", [([], "ClusterRole"), ([HERE / "values-all.yaml"], "Role")], ids=["cluster", "one-namespace"]
)
def test_everything_the_operator_applies_may_be_created_and_patched(values, kind):
    granted = rules_of(render(*values), kind, OPERATOR_ROLE)
    for group, resource in sorted(APPLIED):
        assert (group, resource, "create") in granted, f"{group or 'core'}/{resource}: a first apply is refused"
        assert (group, resource, "patch") in granted, f"{group or 'core'}/{resource}: a later apply is refused"
    for verb in ("list", "watch"):
        assert ("", "secrets", verb) not in granted, f"the operator may {verb} every Secret"


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
KAMERA_KINDS = {"cameras", "frameprocessors"}


def user_roles(objects):
    return {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] in {"kamera-view", "kamera-edit"}
    }


@pytest.mark.parametrize("values", [[], [HERE / "values-all.yaml"]], ids=["cluster", "one-namespace"])
def test_user_roles_aggregate_into_view_edit_and_admin(values):
    roles = user_roles(render(*values))
    assert set(roles) == {"kamera-view", "kamera-edit"}
    aggregated = {
        name: {k.removeprefix(AGGREGATE) for k, v in r["metadata"]["labels"].items() if k.startswith(AGGREGATE) and v == "true"}
        for name, r in roles.items()
    }
    assert aggregated == {"kamera-view": {"view", "edit", "admin"}, "kamera-edit": {"edit", "admin"}}
    assert all("namespace" not in r["metadata"] for r in roles.values())  # role templates, not grants


def test_view_reads_cameras_and_processors_and_writes_nothing():
    objects = render()
    view = rules_of(objects, "ClusterRole", "kamera-view")
    readable = KAMERA_KINDS | {f"{k}/status" for k in KAMERA_KINDS}
    assert view == {("kamera.dev", res, v) for res in readable for v in ("get", "list", "watch")}
    assert not {verb for _, _, verb in view} & WRITE_VERBS


def test_edit_manages_cameras_and_processors_but_not_their_status():
    edit = rules_of(render(), "ClusterRole", "kamera-edit")
    assert edit == {("kamera.dev", res, v) for res in KAMERA_KINDS for v in WRITE_VERBS}
    for verb in ("create", "update", "patch", "delete"):
        assert ("kamera.dev", "cameras", verb) in edit


def test_no_binding_hands_the_user_roles_to_anyone():
    objects = render(HERE / "values-all.yaml")
    bound = {o["roleRef"]["name"] for o in objects if o["kind"].endswith("Binding")}
    assert not bound & {"kamera-view", "kamera-edit"}


def test_user_roles_off_when_not_aggregating(tmp_path):
    off = tmp_path / "no-user-roles.yaml"
    off.write_text("rbac: {aggregateToDefaultRoles: false}\n")
    objects = render(off)
    assert user_roles(objects) == {}
    assert rules_of(objects, "ClusterRole", OPERATOR_ROLE) == table_rules("watched")


def test_rbac_with_leader_election_off_has_no_lease_rights():
    values = HERE / "values-all.yaml"
    no_le = HERE / "no-leader-election.yaml"
    no_le.write_text("operator:\n  leaderElection: {enabled: false}\n")
    try:
        objects = render(values, no_le)
    finally:
        no_le.unlink()
    assert not any(o["metadata"]["name"].endswith("-leader-election") for o in objects)


def test_chart_crds_equal_the_generated_ones():
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    in_chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert in_chart == generated
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text(), (
            f"charts/kamera/crds/{name} drifted: run scripts/sync-chart-crds.sh"
        )


def test_lease_timings_reach_the_operator():
    deploy = next(o for o in render() if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["KAMERA_LEASE_DURATION"], env["KAMERA_RENEW_DEADLINE"], env["KAMERA_RETRY_PERIOD"]) == ("15s", "10s", "2s")


def notes(*sets):
    args = ["install", "kamera", str(CHART), "--dry-run", "--namespace", "kamera"]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return out[out.index("NOTES:"):]


def test_notes_say_the_default_image_repositories_are_placeholders():
    assert "placeholder" in notes() and "make images" in notes()
    own = notes("operator.image.repository=localhost/kamera/kamera-operator",
                "worker.image.repository=localhost/kamera/kamera-worker")
    assert "placeholder" not in own
