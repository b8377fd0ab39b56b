#!/usr/bin/env bash
# `make demo`: build the provider, install it into a filesystem mirror, start the AWS emulator with a seeded VPC,
# `terraform apply` main.tf and print the result. Everything stays on 127.0.0.1 and is stopped at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${DIFY_VENV:-$ROOT/.venv}"
NAMESPACE="${DIFY_PROVIDER_NAMESPACE:-difyops}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dify-demo.XXXXXX")"
TERRAFORM="${TERRAFORM:-$VENV/bin/terraform}"

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
cleanup() { kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
"$VENV/bin/python" "$ROOT/examples/demo/seed.py" "http://127.0.0.1:$PORT"

PKG="$WORK/mirror/registry.terraform.io/$NAMESPACE/dify/$VERSION/linux_amd64"
mkdir -p "$PKG" "$WORK/config"
cp "$ROOT/target/debug/terraform-provider-dify" "$PKG/terraform-provider-dify_v$VERSION"
cat >"$WORK/terraform.rc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$WORK/mirror"
    include = ["registry.terraform.io/$NAMESPACE/dify"]
  }
  direct {
    exclude = ["registry.terraform.io/$NAMESPACE/dify"]
  }
}
RC
sed "s|difyops/dify|$NAMESPACE/dify|" "$ROOT/examples/demo/main.tf" >"$WORK/config/main.tf"

export TF_CLI_CONFIG_FILE="$WORK/terraform.rc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
cd "$WORK/config"
"$TERRAFORM" init -input=false >/dev/null
"$TERRAFORM" apply -auto-approve -input=false
