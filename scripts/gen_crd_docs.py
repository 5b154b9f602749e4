#!/usr/bin/env python3
"""Writes docs/crd-reference.md from the generated CRDs in crds/ (the Rust types are the source).

`python3 scripts/gen_crd_docs.py` rewrites the file; `--check` fails if it is out of date
(run by `make test`)."""

import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "crd-reference.md"

# Kubernetes types embedded whole whose hundreds of fields would drown the page: named, not
# expanded (their reference is the Kubernetes API's).
EMBEDDED = {"volumes": "core/v1 Volume", "volumeMounts": "core/v1 VolumeMount"}


def type_of(s):
    t = s.get("type", "")
    if t == "array":
        return f"[]{type_of(s.get('items', {}))}"
    if s.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    if t == "object" and "additionalProperties" in s:
        return f"map[string]{type_of(s['additionalProperties'])}"
    return t or "any"


def constraints(s):
    parts = []
    if "default" in s and not isinstance(s["default"], (dict, list)):
        parts.append(f"default `{json.dumps(s['default']) if isinstance(s['default'], bool) else s['default']}`")
    if "enum" in s:
        parts.append("one of " + ", ".join(f"`{v}`" for v in s["enum"]))
    if "pattern" in s:
        parts.append(f"pattern `{s['pattern']}`")
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤"), ("minItems", "items ≥"), ("maxItems", "items ≤")):
        if key in s:
            v = s[key]
            parts.append(f"{word} {int(v) if isinstance(v, float) and v.is_integer() else v}")
    for rule in s.get("x-kubernetes-validations", []):
        parts.append(f"rule: {rule.get('message', rule['rule'])}")
    return "; ".join(parts)


def fields(schema, prefix, required, rows, depth=0):
    for name, s in sorted(schema.get("properties", {}).items()):
        path = f"{prefix}.{name}" if prefix else name
        desc = " ".join(s.get("description", "").split()).replace("|", "\\|")
        req = "yes" if name in required else ""
        rule = constraints(s).replace("|", "\\|")
        if path in EMBEDDED:
            desc += f" Each item is a Kubernetes {EMBEDDED[path]}."
        rows.append(f"| `{path}` | {type_of(s)} | {req} | {desc} | {rule} |")
        if depth < 6 and path not in EMBEDDED:
            inner = s.get("items", s) if s.get("type") == "array" else s
            if "properties" in inner:
                fields(inner, path + ("[]" if s.get("type") == "array" else ""), set(inner.get("required", [])), rows, depth + 1)


def render():
    out = [
        "# CRD reference",
        "",
        "Generated from `crds/` (which `kamera-operator crd` generates from the Rust types) by",
        "`python3 scripts/gen_crd_docs.py`; `make test` fails when this file is out of date.",
        "",
    ]
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        out += [
            f"## {names['kind']} (`{crd['spec']['group']}/{version['name']}`)",
            "",
            " ".join(schema.get("description", "").split()),
            "",
            f"Namespaced; short name{'s' if len(names.get('shortNames', [])) > 1 else ''} "
            + ", ".join(f"`{n}`" for n in names.get("shortNames", [])) + ".",
            "",
            "`kubectl get` columns: " + ", ".join(c["name"] for c in version.get("additionalPrinterColumns", [])) + ".",
            "",
        ]
        rules = schema.get("x-kubernetes-validations", []) + schema.get("properties", {}).get("spec", {}).get("x-kubernetes-validations", [])
        for rule in rules:
            out.append(f"- Rule: {rule.get('message', rule['rule'])}")
        if rules:
            out.append("")
        for part in ("spec", "status"):
            s = schema.get("properties", {}).get(part)
            if not s:
                continue
            rows = ["| field | type | required | description | constraints |", "|---|---|---|---|---|"]
            fields(s, "", set(s.get("required", [])), rows)
            out += [f"### {names['kind']}.{part}", ""] + rows + [""]
    return "\n".join(out).rstrip() + "\n"


def main():
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit("docs/crd-reference.md is out of date: run `python3 scripts/gen_crd_docs.py`")
        print("docs/crd-reference.md is up to date")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
