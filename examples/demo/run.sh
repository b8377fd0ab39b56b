#!/usr/bin/env bash
# `make demo`: the dev environment end to end against a local AWS emulator. Builds nothing itself (make does), then:
# starts the emulator, seeds the runbook's dev VPC, a hosted zone, a certificate and a state bucket, applies
# examples/environments/dev with state in S3 (served by the emulator), shows that a second plan is empty, adopts an
# ALB made outside Terraform with an import block, and destroys everything. Only 127.0.0.1; nothing left running.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${DIFY_VENV:-$ROOT/.venv}"
NAMESPACE="${DIFY_PROVIDER_NAMESPACE:-difyops}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dify-demo.XXXXXX")"
TERRAFORM="${TERRAFORM:-$VENV/bin/terraform}"
step() { printf '\n==> %s\n' "$*"; }

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ENDPOINT="http://127.0.0.1:$PORT"
step "Starting the AWS emulator (moto) on $ENDPOINT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
cleanup() { kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

step "Seeding the dev VPC (10.13.0.0/19, subnets in ap-northeast-1a/c/d), a hosted zone, a certificate, a state bucket"
eval "$("$VENV/bin/python" "$ROOT/examples/demo/seed.py" "$ENDPOINT")"
echo "VPC $VPC_ID, zone $ZONE_ID"

step "Installing the provider into a filesystem mirror (as terraform init finds it in a registry)"
PKG="$WORK/mirror/registry.terraform.io/$NAMESPACE/dify/$VERSION/linux_amd64"
mkdir -p "$PKG"
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
mkdir -p "$WORK/tree"
cp -r "$ROOT/examples/environments" "$ROOT/examples/modules" "$WORK/tree/"
find "$WORK/tree" -name '*.tf' -exec sed -i "s|difyops/dify|$NAMESPACE/dify|" {} +
cat >"$WORK/tree/environments/dev/backend.tf" <<TF
# Demo only: the S3 backend, served by the emulator.
terraform {
  backend "s3" {
    bucket                      = "dify-demo-tfstate"
    key                         = "dify/dev/terraform.tfstate"
    region                      = "ap-northeast-1"
    endpoints                   = { s3 = "$ENDPOINT" }
    use_path_style              = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
  }
}
TF

export TF_CLI_CONFIG_FILE="$WORK/terraform.rc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$ENDPOINT"
VARS=(-var "aws_account_id=123456789012" -var "certificate_arn=$CERT_ARN" -var "hosted_zone_id=$ZONE_ID")
DEV="$WORK/tree/environments/dev"

step "terraform init (provider from the mirror, state in S3)"
"$TERRAFORM" -chdir="$DEV" init -input=false -no-color >/dev/null
step "terraform apply examples/environments/dev"
"$TERRAFORM" -chdir="$DEV" apply -auto-approve -input=false -no-color "${VARS[@]}" | grep -E "Creation complete|Apply complete|Warning" || true
step "Outputs"
"$TERRAFORM" -chdir="$DEV" output -no-color
step "terraform plan -detailed-exitcode: no drift"
"$TERRAFORM" -chdir="$DEV" plan -detailed-exitcode -input=false "${VARS[@]}" >/dev/null && echo "No changes: the infrastructure matches the configuration."

step "Adopting an ALB made outside Terraform (as an older HCL module would have)"
LEGACY_ARN="$("$VENV/bin/python" "$ROOT/examples/demo/legacy_alb.py" "$ENDPOINT" "$VPC_ID" "$PUBLIC_A" "$PUBLIC_C" "$CERT_ARN")"
echo "made $LEGACY_ARN"
mkdir -p "$WORK/adopt"
cat >"$WORK/adopt/main.tf" <<TF
terraform {
  required_providers {
    dify = { source = "$NAMESPACE/dify" }
  }
}

provider "dify" {
  region = "ap-northeast-1"
}

import {
  to = dify_alb.legacy
  id = "legacy-dify"
}

resource "dify_alb" "legacy" {
  name            = "legacy-dify"
  vpc_id          = "$VPC_ID"
  subnet_ids      = ["$PUBLIC_A", "$PUBLIC_C"]
  certificate_arn = "$CERT_ARN"
  allowed_cidrs   = { office_tokyo = ["203.0.113.10/32"] }
}
TF
"$TERRAFORM" -chdir="$WORK/adopt" init -input=false -no-color >/dev/null
"$TERRAFORM" -chdir="$WORK/adopt" apply -auto-approve -input=false -no-color | grep -E "Importing|Import complete|Apply complete"

step "Cleaning up: destroying both configurations"
"$TERRAFORM" -chdir="$WORK/adopt" destroy -auto-approve -input=false -no-color | grep -E "Destroy complete"
"$TERRAFORM" -chdir="$DEV" destroy -auto-approve -input=false -no-color "${VARS[@]}" | grep -E "Destroy complete|Final snapshot" || true
step "Done: the emulator stops now and nothing is left running"
