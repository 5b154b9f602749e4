#!/usr/bin/env bash
# A project-local Python environment (.venv) with the packages tests use (requirements-dev.txt).
set -euo pipefail
[ "${KAMERA_SETUP_FOR:-test}" = run ] && exit 0  # test tools only
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv"
req="$root/requirements-dev.txt"
stamp="$venv/.requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages from requirements-dev.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
echo "setup: Python environment ready ($venv)"
