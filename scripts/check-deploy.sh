#!/usr/bin/env bash
# Checks the container build file and the Kubernetes manifests offline:
#   - yamllint on every manifest;
#   - kubernetes-validate --strict against the bundled Kubernetes schemas (no cluster needed);
#   - structural checks of the Dockerfile (multi-stage, non-root user, ports, entrypoint);
#   - the ConfigMap's config.toml loads with `switchyard check-config` (policies compiled and
#     checked; placeholder secrets in the environment).
# Needs python3-venv (scripts/install-toolchain.sh) and a built `switchyard` binary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/target/deploy-venv"
if [[ ! -x "$VENV/bin/kubernetes-validate" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r deploy/requirements.txt
fi
manifests=(deploy/k8s/configmap.yaml deploy/k8s/secret.yaml deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/redis.yaml deploy/k8s/hpa.yaml)
"$VENV/bin/yamllint" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' deploy/k8s
"$VENV/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
echo "kubernetes manifests: valid (strict, Kubernetes $("$VENV/bin/python" -c 'import kubernetes_validate.utils as u; print(u.latest_version())' 2>/dev/null || echo default))"
"$VENV/bin/python" deploy/check_dockerfile.py deploy/Dockerfile

BIN="$ROOT/target/debug/switchyard"
[[ -x "$BIN" ]] || cargo build --locked -q -p switchyard
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/python" - "$tmp/config.toml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("deploy/k8s/configmap.yaml"))
open(sys.argv[1], "w").write(doc["data"]["config.toml"])
PY
DEEPSEEK_API_KEY=placeholder OPENAI_API_KEY=placeholder SWITCHYARD_ADMIN_TOKEN=placeholder-admin-token \
  XDG_CACHE_HOME="$tmp/cache" "$BIN" check-config --config "$tmp/config.toml"
echo "deployment files: ok"
