"""docs/metrics.md documents exactly the metrics the code registers, with their labels, and the
Grafana dashboard uses only documented metrics."""

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def documented():
    rows = re.findall(r"^\| `(kamera_[a-z_]+)` \| (\w+) \|([a-z_, ]*)\|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    return {name: {l.strip() for l in labels.split(",") if l.strip()} for name, _, labels in rows}


def registered():
    """Metric names in the Rust sources, with the label list that follows each."""
    found = {}
    for path in list((ROOT / "worker" / "src").rglob("*.rs")) + list((ROOT / "operator" / "src").rglob("*.rs")):
        text = path.read_text()
        for m in re.finditer(r'"(kamera_[a-z_]+)"', text):
            after = text[m.end(): m.end() + 500].split('"kamera_')[0]
            # A labelled family is built as `XVec::new(opts, &["label", ...])`; a plain one has no `&[`.
            labels = re.search(r'\)\s*(?:\.buckets\([^)]*\)\s*)?,\s*&\[([^\]]*)\]', after, re.S)
            names = set(re.findall(r'"([a-z_]+)"', labels.group(1))) if labels else set()
            if "test" in path.name or "/tests" in str(path):
                continue
            found.setdefault(m.group(1), set()).update(names)
    return found


def test_every_registered_metric_is_documented_with_its_labels():
    docs, code = documented(), registered()
    assert set(code) == set(docs), f"undocumented: {sorted(set(code) - set(docs))}; stale: {sorted(set(docs) - set(code))}"
    for name, labels in code.items():
        assert labels == docs[name], f"{name}: code labels {sorted(labels)}, documented {sorted(docs[name])}"


def test_dashboard_uses_documented_metrics():
    dash = json.loads((ROOT / "examples" / "grafana" / "kamera-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"kamera_[a-z_]+", exprs)}
    assert used <= set(documented()), sorted(used - set(documented()))
