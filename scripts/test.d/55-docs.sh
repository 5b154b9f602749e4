#!/usr/bin/env bash
# The docs stay true: the CRD reference is regenerated from crds/, and the quick start's
# commands run as written against a real worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python scripts/gen_crd_docs.py --check
.venv/bin/python -m pytest -q tests/docs
