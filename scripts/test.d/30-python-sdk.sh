#!/usr/bin/env bash
# The Python SDK (package `kamera` and the `rtmp_to_llhls` compatibility module), tested
# against the real kamera-worker, which `make test` has built before this runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=.venv/bin/python
[ -x "$python" ] || python=python3
export PYTHONPATH="$PWD/sdk/python/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m pytest -q -p no:cacheprovider sdk/python/tests "$@"
