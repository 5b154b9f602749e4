"""Offline validation of everything the operator makes or accepts, for scripts/test.d/20-operator.sh.

1. The generated CRDs validate as CustomResourceDefinitions (kubernetes-validate, strict).
2. Every object `kamera-operator render` builds for each example Camera (with the example
   FrameProcessors) validates against the real Kubernetes schemas (kubernetes-validate, strict).
3. Example Cameras and FrameProcessors validate against the CRDs' openAPIV3Schema, the way the
   API server checks them (unknown fields rejected, nullable honoured); the manifests in
   operator/tests/data/invalid must all be rejected. CEL rules are not evaluated here: a manifest
   that only a rule refuses carries a `# rejected by CEL: <message>` line, and
   operator/tests/crd_rules.rs (cargo test) checks that its rule refuses it with that message.
4. No two examples ask for the same node port.
5. The example Secrets (examples/secrets) validate against the real Kubernetes schemas.
"""

import copy
import pathlib
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.37.0"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_validate(obj, where):
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        raise SystemExit(f"FAIL {where}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}: {e.message} at {list(e.path)}")


def structural(schema):
    """An openAPIV3Schema as JSON Schema with the API server's strictness: no unknown fields."""
    s = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for key, value in list(node.items()):
            if key.startswith("x-kubernetes-"):
                continue
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

    walk(s)
    # apiVersion, kind and metadata are the API server's own, not the CRD schema's (a CRD may
    # declare metadata.name for its rules; the server still validates all of ObjectMeta).
    s["additionalProperties"] = False
    for implicit in ("apiVersion", "kind", "metadata"):
        s.setdefault("properties", {})[implicit] = {}
    return s


CEL_MARK = "# rejected by CEL:"


def node_ports(obj):
    """Every fixed node port a Camera asks for: ingest, HTTP and the deprecated `service`."""
    spec = obj.get("spec") or {}
    ports = []
    legacy = spec.get("service") or {}
    if "rtmpNodePort" in legacy:
        ports.append(legacy["rtmpNodePort"])
    for side in ("ingest", "http"):
        service = (spec.get(side) or {}).get("service") or {}
        if "nodePort" in service:
            ports.append(service["nodePort"])
    return ports


def main():
    binary = sys.argv[1]
    crds = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for crd in docs(path):
            k8s_validate(crd, path.name)
            version = crd["spec"]["versions"][0]
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            crds[key] = jsonschema.Draft4Validator(structural(version["schema"]["openAPIV3Schema"]))
    print(f"ok   {len(crds)} CRDs are valid CustomResourceDefinitions (Kubernetes {K8S_VERSION})")

    def crd_errors(obj):
        validator = crds.get((obj.get("apiVersion"), obj.get("kind")))
        if validator is None:
            return [f"no CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
        return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]

    examples = sorted((ROOT / "examples" / "cameras").glob("*.yaml")) + sorted((ROOT / "examples" / "processors").glob("*.yaml"))
    for path in examples:
        for obj in docs(path):
            errors = crd_errors(obj)
            if errors:
                raise SystemExit(f"FAIL {path.relative_to(ROOT)} is rejected by its CRD: {errors}")
    print(f"ok   {len(examples)} example manifests validate against the CRD schemas")

    ports = {}
    for path in examples:
        for obj in docs(path):
            for port in node_ports(obj):
                if port in ports:
                    raise SystemExit(f"FAIL node port {port} is used by both {ports[port]} and {path.relative_to(ROOT)}")
                ports[port] = path.relative_to(ROOT)
    print(f"ok   {len(ports)} example node ports, all distinct")

    invalid = sorted((ROOT / "operator" / "tests" / "data" / "invalid").glob("*.yaml"))
    for path in invalid:
        cel = [l[len(CEL_MARK):].strip() for l in path.read_text().splitlines() if l.startswith(CEL_MARK)]
        for obj in docs(path):
            errors = crd_errors(obj)
            if errors:
                print(f"ok   {path.name} rejected: {errors[0]}")
            elif cel:
                print(f"ok   {path.name} left to its CEL rule ({cel[0]!r}), checked by operator/tests/crd_rules.rs")
            else:
                raise SystemExit(f"FAIL {path.relative_to(ROOT)} should be rejected by its CRD but is accepted")

    secrets = sorted((ROOT / "examples" / "secrets").glob("*.yaml"))
    for path in secrets:
        for obj in docs(path):
            k8s_validate(obj, str(path.relative_to(ROOT)))
    print(f"ok   {len(secrets)} example Secrets valid for Kubernetes {K8S_VERSION}")

    processors = sorted((ROOT / "examples" / "processors").glob("*.yaml"))
    count = 0
    for camera in sorted((ROOT / "examples" / "cameras").glob("*.yaml")):
        cmd = [binary, "render", "--camera", str(camera)]
        for p in processors:
            cmd += ["--processors", str(p)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        built = [d for d in yaml.safe_load_all(out) if d]
        for obj in built:
            k8s_validate(obj, f"render {camera.name}")
            count += 1
        print(f"ok   {camera.name}: {', '.join(o['kind'] for o in built)} valid for Kubernetes {K8S_VERSION}")
    print(f"ok   {count} built objects pass kubernetes-validate --strict")


if __name__ == "__main__":
    main()
