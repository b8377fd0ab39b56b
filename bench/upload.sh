#!/usr/bin/env bash
# Benchmark: seeding an EBS snapshot from a 1 GiB image holding 256 MiB of data, three ways, against the same
# emulator on this machine: this provider (`terraform apply` of a dify_persistent_volume with source_image, release
# build), the `coldsnap upload` command line, and a plain sequential boto3 script. Prints a Markdown table of the
# median of RUNS runs each. Usage: bench/upload.sh [RUNS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS="${1:-3}"
VENV="${DIFY_VENV:-$ROOT/.venv}"
NAMESPACE="${DIFY_PROVIDER_NAMESPACE:-difyops}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dify-bench.XXXXXX")"
TERRAFORM="${TERRAFORM:-$VENV/bin/terraform}"
COLDSNAP="$ROOT/bench/.tools/bin/coldsnap"
MOTO_PID=""
cleanup() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

if [ ! -x "$COLDSNAP" ]; then
  cargo install coldsnap --version 0.12.0 --locked --root "$ROOT/bench/.tools" >&2
fi
"$VENV/bin/python" "$ROOT/bench/make_image.py" "$WORK/image.raw" >&2

start_moto() {
  [ -n "$MOTO_PID" ] && { kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; }
  PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$VENV/bin/python" "$ROOT/bench/moto_server.py" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
}

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

# The provider, release build, installed in a filesystem mirror.
PKG="$WORK/mirror/registry.terraform.io/$NAMESPACE/dify/$VERSION/linux_amd64"
mkdir -p "$PKG" "$WORK/tf"
cp "$ROOT/target/release/terraform-provider-dify" "$PKG/terraform-provider-dify_v$VERSION"
cat >"$WORK/terraform.rc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$WORK/mirror"
    include = ["registry.terraform.io/$NAMESPACE/dify"]
  }
  direct { exclude = ["registry.terraform.io/$NAMESPACE/dify"] }
}
RC
export TF_CLI_CONFIG_FILE="$WORK/terraform.rc"
cat >"$WORK/tf/main.tf" <<TF
terraform {
  required_providers {
    dify = { source = "$NAMESPACE/dify" }
  }
}
provider "dify" {}
resource "dify_persistent_volume" "seeded" {
  name              = "bench"
  availability_zone = "us-east-1a"
  size_gb           = 1
  final_snapshot    = false
  source_image      = "$WORK/image.raw"
}
TF
(cd "$WORK/tf" && "$TERRAFORM" init -input=false >/dev/null)

seconds() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; e=$(date +%s%N); awk -v d="$((e - s))" 'BEGIN {printf "%.3f", d / 1e9}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

provider_run() {
  rm -f "$WORK/tf/terraform.tfstate" "$WORK/tf.log"
  # A fresh image-hash cache each run: what a first apply of a new image costs.
  rm -rf "$WORK/cache"
  (cd "$WORK/tf" && XDG_CACHE_HOME="$WORK/cache" TF_LOG_PROVIDER=INFO TF_LOG_PATH="$WORK/tf.log" "$TERRAFORM" apply -auto-approve -input=false)
  # The upload phase alone: from the provider's "uploading disk image" line to its "image uploaded" line.
  "$VENV/bin/python" - "$WORK/tf.log" >>"$WORK/phases" <<'PY'
import re, sys
from datetime import datetime
stamps = {}
for line in open(sys.argv[1], errors="replace"):
    for key in ("uploading disk image", "image uploaded"):
        if key in line and key not in stamps:
            stamps[key] = datetime.fromisoformat(line.split(" ")[0].replace("Z", "+00:00"))
print((stamps["image uploaded"] - stamps["uploading disk image"]).total_seconds())
PY
}
coldsnap_run() { "$COLDSNAP" upload "$WORK/image.raw"; }
boto_run() { "$VENV/bin/python" "$ROOT/bench/sequential_upload.py" "$WORK/image.raw" "$AWS_ENDPOINT_URL"; }

declare -A RESULT
for who in provider coldsnap boto; do
  times=()
  for _ in $(seq 1 "$RUNS"); do
    start_moto
    times+=("$(seconds "${who}_run")")
  done
  RESULT[$who]="$(printf '%s\n' "${times[@]}" | median)"
  echo "$who: ${times[*]} (median ${RESULT[$who]} s)" >&2
done

UPLOAD_PHASE="$(median <"$WORK/phases")"
echo "provider upload phase alone: $(tr '\n' ' ' <"$WORK/phases")(median $UPLOAD_PHASE s)" >&2
echo "| uploader | median of $RUNS (s) | vs. this provider |"
echo "| --- | --- | --- |"
for who in provider coldsnap boto; do
  ratio="$(awk -v a="${RESULT[$who]}" -v b="${RESULT[provider]}" 'BEGIN {printf "%.2f", a / b}')"
  label=$([ "$who" = provider ] && echo "this provider (terraform apply, release build)" || ([ "$who" = coldsnap ] && echo "coldsnap 0.12.0 upload" || echo "sequential boto3 script"))
  printf '| %s | %.2f | %sx |\n' "$label" "${RESULT[$who]}" "$ratio"
done
printf '| this provider, upload phase alone (StartSnapshot → CompleteSnapshot, from its log) | %.2f | |\n' "$UPLOAD_PHASE"
