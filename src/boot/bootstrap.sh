#!/bin/bash
# dify-bootstrap: run by dify.service at every boot (installed by terraform-provider-dify's cloud-config).
# Mounts the Dify data volume without ever formatting a disk that holds data, makes Dify's secrets once and keeps
# them on that volume, and starts Dify's Docker Compose release with every data path on the volume. Idempotent.
set -euo pipefail
LOG="${DIFY_LOG:-/var/log/dify-bootstrap.log}"
exec > >(tee -a "$LOG" | logger -t dify-bootstrap -s 2>"${DIFY_CONSOLE:-/dev/console}") 2>&1
# systemd stops what is left of the service once this script exits, the log pipe included: drain it first, so the
# last lines (a failure's reason) reach the console (EC2's console output) and the journal. The exit status is kept.
LOG_PIPE=$!
# A provider preparing a replacement reads the console for the DIFY-PREPARED marker or a FAILED line: an exit that
# `fail` did not explain (a command failing under `set -e`) says so too, so it never waits for a line that cannot come.
FAILED_SAID=""
on_exit() {
  local status=$?
  if [ "$status" != 0 ] && [ -z "$FAILED_SAID" ]; then
    echo "dify-bootstrap: FAILED: exit status $status (the lines above say where)" >&2
  fi
  exec >&- 2>&-
  wait "$LOG_PIPE" 2>/dev/null || true
  exit "$status"
}
trap on_exit EXIT

SETTINGS="${DIFY_SETTINGS:-/etc/dify/dify.env}"
SETTINGS_DIR="$(dirname "$SETTINGS")"
# Where Dify's releases are fetched, one directory per version; `current` points at the one running.
RELEASES="${DIFY_RELEASES:-/opt/dify}"
DATA_DIR="${DIFY_DATA_DIR:-/opt/dify-data}"
# How long to wait for the data volume: a replacement prepared while the old instance serves waits here until the old
# one has drained, stopped and let its volume go (issue 17's pre-warmed replacement).
DEVICE_WAIT_SECONDS="${DIFY_DEVICE_WAIT_SECONDS:-3600}"
# How long an instance other than dify:index 0 waits for index 0 to fill the shared secret (DIFY_SHARED_SECRETS).
SHARED_SECRETS_WAIT_SECONDS="${DIFY_SHARED_SECRETS_WAIT_SECONDS:-900}"
# Tests run the disk step against stand-in devices under DIFY_DEV_ROOT (regular files, fake blkid/mkfs/mount).
DEV_ROOT="${DIFY_DEV_ROOT:-}"
FSTAB="${DIFY_FSTAB:-/etc/fstab}"
IMDS=http://169.254.169.254/latest
SECRETS_FILE="$DATA_DIR/secrets/dify-secrets.env"

fail() {
  FAILED_SAID=1
  echo "dify-bootstrap: FAILED: $*" >&2
  exit 1
}

# The settings terraform-provider-dify rendered (no secrets in them).
# shellcheck disable=SC1090
. "$SETTINGS"

# A path under the instance metadata's meta-data/ (IMDSv2: a token first).
imds_get() {
  local token
  token="$(curl -fsS -X PUT "$IMDS/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')" || return 1
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/$1"
}

imds_tag() {
  imds_get "tags/instance/$1"
}

# The instance's region, for every `aws` call (an instance has no default region configured).
instance_region() {
  imds_get placement/region || fail "reading this instance's region from instance metadata (placement/region)"
}

# The region a Secrets Manager secret lives in: an ARN's own, a name's the instance's.
secret_region() {
  case "$1" in
    arn:*) cut -d : -f 4 <<<"$1" ;;
    *) instance_region ;;
  esac
}

find_device() {
  # Nitro instances (t3, m6i...) expose EBS as NVMe, each controller's serial being the volume id without its dash:
  # found by serial, which every distribution has (the by-id name and /dev/sdf links are not everywhere). The disk is
  # looked up from the block side: each NVMe disk's `device` is its controller, or, when the kernel's native multipath
  # names disks by subsystem (a controller that reports a shared namespace, as QEMU 10's does), its subsystem, and
  # both carry the serial (Linux, drivers/nvme/host: the controller's and nvme_subsys_attrs' `serial`). The disk's
  # name need not be the controller's plus n1: under multipath, nvme1's namespace can be nvme2n1, and the hidden
  # per-path disks (nvme2c1n1) have no device node.
  local serial="${1/-/}" candidate disk
  for disk in "$DEV_ROOT"/sys/block/nvme*; do
    [ -r "$disk/device/serial" ] || continue
    if [ "$(tr -d '[:space:]' <"$disk/device/serial")" = "$serial" ]; then
      candidate="$DEV_ROOT/dev/$(basename "$disk")"
      if [ -b "$candidate" ] || { [ -n "$DEV_ROOT" ] && [ -e "$candidate" ]; }; then
        readlink -f "$candidate"
        return 0
      fi
    fi
  done
  # Older Xen instances (t2, m4) name the attachment itself: /dev/sdf as the provider attaches it, or /dev/xvdf as
  # the HCL module did.
  for candidate in "$DEV_ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}" "$DEV_ROOT/dev/sdf" "$DEV_ROOT/dev/xvdf"; do
    if [ -b "$candidate" ] || { [ -n "$DEV_ROOT" ] && [ -e "$candidate" ]; }; then
      readlink -f "$candidate"
      return 0
    fi
  done
  return 1
}

# Whether a directory not mounted from the data volume already holds anything (data on the root disk).
holds_data() {
  [ -d "$1" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]
}

# Stops whatever Docker started from restart policies before this script ran, so no database writes while its files
# move. (With the data volume in fstab, docker.service waits for the mount; without it, it does not.)
stop_docker() {
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
    echo "dify-bootstrap: stopping Docker while Dify's data moves"
    systemctl stop docker docker.socket || fail "stopping Docker before moving Dify's data"
  fi
}

mount_data_volume() {
  local volume_id="$1" device="" uuid fstype probe=0 on_root_disk="" staging _
  device="$(find_device "$volume_id" || true)"
  if [ -z "$device" ]; then
    echo "dify-bootstrap: waiting up to ${DEVICE_WAIT_SECONDS}s for data volume $volume_id to be attached"
    for _ in $(seq 1 "$DEVICE_WAIT_SECONDS"); do
      sleep 1
      device="$(find_device "$volume_id" || true)"
      [ -n "$device" ] && break
    done
  fi
  [ -n "$device" ] || fail "data volume $volume_id did not appear within ${DEVICE_WAIT_SECONDS}s"
  mkdir -p "$DATA_DIR"
  if ! mountpoint -q "$DATA_DIR" && holds_data "$DATA_DIR"; then
    on_root_disk=1
  fi
  # Format only when blkid says "nothing found" (exit 2). Any other failure (4: usage or I/O error, 8: ambiguous
  # signatures) may be a disk that holds data: stop, loudly, with nothing started.
  blkid -p "$device" >/dev/null 2>&1 || probe=$?
  case "$probe" in
    0)
      [ -z "$on_root_disk" ] ||
        fail "$DATA_DIR on the root disk holds Dify data and data volume $volume_id ($device) holds a filesystem: mounting it would hide one of them. Move or remove one (the root-disk copy is in $DATA_DIR), then restart dify.service"
      ;;
    2)
      echo "dify-bootstrap: $device ($volume_id) is blank; creating a filesystem"
      mkfs.ext4 -q -L dify-data "$device" || fail "creating a filesystem on $device"
      if [ -n "$on_root_disk" ]; then
        # A data volume added to a stack that ran without one: its data moves onto the volume, and the root-disk
        # copy is kept beside it, renamed, never hidden under the mount.
        stop_docker
        staging="$(mktemp -d)"
        mount "$device" "$staging" || fail "mounting $device to move the root disk's data onto it"
        cp -a "$DATA_DIR/." "$staging/" || fail "copying $DATA_DIR onto $device"
        sync
        umount "$staging" || fail "unmounting $staging"
        rmdir "$staging"
        mv "$DATA_DIR" "$DATA_DIR.root-disk-$(date +%Y%m%d%H%M%S)"
        mkdir -p "$DATA_DIR"
        echo "dify-bootstrap: moved the data on the root disk onto $volume_id; the root-disk copy is kept as $DATA_DIR.root-disk-*"
      fi
      ;;
    *) fail "blkid could not probe $device ($volume_id), exit $probe (an error, or more than one signature); not formatting it. Inspect it with 'blkid -p $device' and 'wipefs --no-act $device'" ;;
  esac
  uuid="$(blkid -s UUID -o value "$device")" || fail "no filesystem UUID on $device"
  [ -n "$uuid" ] || fail "no filesystem UUID on $device (a partition table? the data volume must hold one filesystem)"
  fstype="$(blkid -s TYPE -o value "$device")" || fail "no filesystem type on $device"
  grep -q "UUID=$uuid" "$FSTAB" || echo "UUID=$uuid $DATA_DIR $fstype defaults,nofail 0 2" >>"$FSTAB"
  if command -v systemctl >/dev/null; then systemctl daemon-reload || true; fi
  mountpoint -q "$DATA_DIR" || mount "$DATA_DIR" || fail "mounting $device at $DATA_DIR"
  grow_filesystem "$device" "$fstype"
}

# A volume grown with size_gb: the mounted filesystem follows, online (at boot, and while running through
# dify-grow.service). A no-op when it already fills its device.
grow_filesystem() {
  local device="$1" fstype="$2" before after
  before="$(df -P -k "$DATA_DIR" | awk 'NR == 2 { print $2 }')"
  case "$fstype" in
    ext4 | ext3 | ext2) resize2fs "$device" >/dev/null 2>&1 || echo "dify-bootstrap: resize2fs $device failed; the filesystem keeps its size" ;;
    xfs) xfs_growfs "$DATA_DIR" >/dev/null 2>&1 || echo "dify-bootstrap: xfs_growfs $DATA_DIR failed; the filesystem keeps its size" ;;
  esac
  after="$(df -P -k "$DATA_DIR" | awk 'NR == 2 { print $2 }')"
  if [ "$before" != "$after" ]; then
    echo "dify-bootstrap: the filesystem on $device grew from $((before / 1024)) MiB to $((after / 1024)) MiB"
  fi
}

# `dify-bootstrap grow`, run by dify-grow.service when the kernel reports a block device's new size (EBS
# ModifyVolume while the instance runs: udev's change event with RESIZE=1): grows the data volume's filesystem if it
# is mounted, and touches nothing else.
grow_mounted() {
  local device fstype
  if ! mountpoint -q "$DATA_DIR"; then
    echo "dify-bootstrap: grow: no data volume mounted at $DATA_DIR; nothing to grow"
    return 0
  fi
  device="$(findmnt -n -o SOURCE --mountpoint "$DATA_DIR")" || fail "grow: no device for $DATA_DIR"
  fstype="$(findmnt -n -o FSTYPE --mountpoint "$DATA_DIR")" || fail "grow: no filesystem type for $DATA_DIR"
  grow_filesystem "$device" "$fstype"
}

# Moves an existing install's data into the layout this script uses ($DATA_DIR/volumes/<what Dify's compose file
# names>), once, by atomic renames on the same filesystem: a Compose install's docker/volumes copied to the
# filesystem's root (db/, app/, redis/...), or the HCL module's postgres/, redis/ and weaviate/.
adopt_layout() {
  local entry partial="$DATA_DIR/volumes.adopting"
  [ -d "$DATA_DIR/volumes" ] && return 0
  if [ -d "$partial" ] || [ -d "$DATA_DIR/db" ] || [ -d "$DATA_DIR/app" ]; then
    echo "dify-bootstrap: $DATA_DIR holds a Compose install's docker/volumes at its root; moving it under $DATA_DIR/volumes"
    mkdir -p "$partial"
    for entry in "$DATA_DIR"/* "$DATA_DIR"/.[!.]*; do
      [ -e "$entry" ] || continue
      case "$(basename "$entry")" in lost+found | secrets | volumes.adopting) continue ;; esac
      mv "$entry" "$partial/"
    done
    mv "$partial" "$DATA_DIR/volumes"
  elif [ -d "$DATA_DIR/postgres" ] || [ -d "$DATA_DIR/redis" ] || [ -d "$DATA_DIR/weaviate" ]; then
    echo "dify-bootstrap: $DATA_DIR holds the HCL module's layout (postgres/, redis/, weaviate/); moving it under $DATA_DIR/volumes"
    mkdir -p "$partial/db/data" "$partial/redis"
    if [ -d "$DATA_DIR/postgres" ]; then
      # Dify's PostgreSQL keeps PGDATA in db/data/pgdata.
      if [ -f "$DATA_DIR/postgres/PG_VERSION" ]; then
        mv "$DATA_DIR/postgres" "$partial/db/data/pgdata"
      else
        rmdir "$partial/db/data" && mv "$DATA_DIR/postgres" "$partial/db/data"
      fi
    fi
    if [ -d "$DATA_DIR/redis" ]; then mv "$DATA_DIR/redis" "$partial/redis/data"; fi
    if [ -d "$DATA_DIR/weaviate" ]; then mv "$DATA_DIR/weaviate" "$partial/weaviate"; fi
    mv "$partial" "$DATA_DIR/volumes"
  fi
}

# Secrets: made once with the kernel's random source, mode 0600 on the data volume, reused by every boot and every
# replacement instance. Never in user data, Terraform state, plans or logs. Only the names this configuration uses
# (DIFY_GENERATED_SECRETS) are made; ones made for an earlier configuration are kept.
random_secret() {
  local length="$1"
  head -c 64 /dev/urandom | base64 | tr -d '/+=\n' | cut -c "1-$length"
}

# A secret carried over from an earlier install (secrets/import.env, written by the migration guides from the old
# .env), with the quotes a .env may put around it taken off.
imported_secret() {
  local line value
  [ -f "$DATA_DIR/secrets/import.env" ] || return 1
  line="$(grep "^$1=" "$DATA_DIR/secrets/import.env" | tail -n 1)" || return 1
  value="${line#*=}"
  case "$value" in \"*\" | \'*\') value="${value:1:${#value}-2}" ;; esac
  [ -n "$value" ] || return 1
  printf '%s' "$value"
}

make_secrets() {
  mkdir -p "$DATA_DIR/secrets"
  chmod 0700 "$DATA_DIR/secrets"
  touch "$SECRETS_FILE"
  chmod 0600 "$SECRETS_FILE"
  if [ -n "${DIFY_SHARED_SECRETS:-}" ]; then share_secrets; else fill_secrets; fi
}

# Each name of DIFY_GENERATED_SECRETS the secrets file lacks: carried over from secrets/import.env, else generated.
fill_secrets() {
  local file="$SECRETS_FILE" name value
  for name in ${DIFY_GENERATED_SECRETS:-}; do
    grep -q "^$name=" "$file" && continue
    # The database keeps the password it was created with: an imported install's must be reused, not replaced.
    if value="$(imported_secret "$name")"; then
      echo "dify-bootstrap: $name carried over from secrets/import.env"
      echo "$name=$value" >>"$file"
      continue
    fi
    case "$name" in
      # Dify refuses an INIT_PASSWORD longer than 30 characters.
      INIT_PASSWORD) value="$(random_secret 24)" ;;
      # OpenSearch wants an upper- and lower-case letter, a digit and a special character.
      OPENSEARCH_PASSWORD) value="$(random_secret 40)-Aa1" ;;
      *) value="$(random_secret 48)" ;;
    esac
    echo "$name=$value" >>"$file"
  done
}

# The secrets every instance of a multi-instance stack shares (DIFY_SHARED_SECRETS: a Secrets Manager secret holding
# a JSON object, name -> value). Only the instance tagged dify:index 0 writes it: it adds what the secret lacks, from
# its own secrets file (so a stack going from one instance to two keeps its secrets and its sessions) or made anew,
# and never changes a value the secret holds. Every other instance waits until the secret holds every name it needs.
# Each instance then keeps the shared values in its own secrets file, so index 0 re-seeds a lost secret with them.
# Values pass through files in a 0700 directory only, never a command line or the log.
share_secrets() {
  local name="$DIFY_SHARED_SECRETS" needed="${DIFY_GENERATED_SECRETS:-}" region index work lacking deadline
  [ -n "$needed" ] || return 0
  region="$(instance_region)" || exit 1
  index="$(imds_tag dify:index)" ||
    fail "reading this instance's dify:index tag from instance metadata (instance metadata tags must be on)"
  rm -rf "$DATA_DIR/secrets"/shared.* # what a boot that failed here left
  work="$(mktemp -d "$DATA_DIR/secrets/shared.XXXXXX")"
  read_shared_secret "$region" "$work/shared.json"
  if [ "$index" = 0 ]; then
    # shellcheck disable=SC2086 # names: one word each
    shared_secret_values adopt "$work/shared.json" $needed || fail "using shared secret $name"
    fill_secrets
    # shellcheck disable=SC2086
    lacking="$(shared_secret_values lacking "$work/shared.json" $needed)" || fail "using shared secret $name"
    if [ -n "$lacking" ]; then
      echo "dify-bootstrap: instance 0 adds $lacking to shared secret $name"
      # shellcheck disable=SC2086
      shared_secret_values merge "$work/shared.json" $needed >"$work/merged.json" || fail "using shared secret $name"
      aws secretsmanager put-secret-value --secret-id "$name" --region "$region" --secret-string "file://$work/merged.json" >/dev/null ||
        fail "writing shared secret $name (the instance profile needs secretsmanager:PutSecretValue on it)"
    fi
  else
    deadline=$((SECONDS + SHARED_SECRETS_WAIT_SECONDS))
    while :; do
      # shellcheck disable=SC2086
      lacking="$(shared_secret_values lacking "$work/shared.json" $needed)" || fail "using shared secret $name"
      [ -n "$lacking" ] || break
      [ "$SECONDS" -lt "$deadline" ] ||
        fail "shared secret $name still lacks $lacking after ${SHARED_SECRETS_WAIT_SECONDS}s: the instance tagged dify:index 0 fills it (is it running? see its console)"
      echo "dify-bootstrap: instance $index: waiting for instance 0 to fill $name ($lacking)"
      sleep 10
      read_shared_secret "$region" "$work/shared.json"
    done
    # shellcheck disable=SC2086
    shared_secret_values adopt "$work/shared.json" $needed || fail "using shared secret $name"
  fi
  rm -rf "$work"
  echo "dify-bootstrap: instance $index uses the shared secrets of $name"
}

# The shared secret's JSON into a file.
read_shared_secret() {
  aws secretsmanager get-secret-value --secret-id "$DIFY_SHARED_SECRETS" --region "$1" --query SecretString --output text >"$2" ||
    fail "reading shared secret $DIFY_SHARED_SECRETS from Secrets Manager (the instance profile needs secretsmanager:GetSecretValue on it)"
}

# shared_secret_values MODE SHARED_JSON NAME...: over the shared secret's JSON and the secrets file,
#   lacking  prints the names the secret lacks (or holds empty);
#   adopt    writes the values the secret holds into the secrets file (other lines kept);
#   merge    prints the secret's JSON with the secrets file's values for the names it lacks.
# Values are read from and written to files only; messages name keys, never values.
shared_secret_values() {
  python3 - "$SECRETS_FILE" "$@" <<'PY'
import json, os, sys
local_path, mode, shared_path, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
try:
    shared = json.load(open(shared_path))
except ValueError:
    shared = None
if not isinstance(shared, dict) or not all(isinstance(v, str) for v in shared.values()):
    sys.exit("dify-bootstrap: the shared secret is not a JSON object of names to strings")
local = {}
for line in open(local_path).read().splitlines():
    if "=" in line:
        key, value = line.split("=", 1)
        local[key] = value
lacking = [n for n in names if not shared.get(n)]
if mode == "lacking":
    print(" ".join(lacking))
elif mode == "merge":
    missing = [n for n in lacking if not local.get(n)]
    if missing:
        sys.exit("dify-bootstrap: the secrets file lacks " + " ".join(missing))
    json.dump({**shared, **{n: local[n] for n in lacking}}, sys.stdout)
elif mode == "adopt":
    for n in names:
        if shared.get(n):
            if "\n" in shared[n] or "\r" in shared[n]:
                sys.exit(f"dify-bootstrap: the shared value of {n} holds a line break")
            local[n] = shared[n]
    old = os.umask(0o077)
    with open(local_path + ".new", "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in local.items())
    os.umask(old)
    os.replace(local_path + ".new", local_path)
PY
}

# Dify's .env as it is built: key -> value. Values never pass through a command line or a log.
declare -A DIFY_ENV=()

# Reads KEY=value lines (values taken as they are, up to the line's end) into DIFY_ENV.
load_env_lines() {
  local line
  [ -f "$1" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    DIFY_ENV["${line%%=*}"]="${line#*=}"
  done <"$1"
}

# A secret's value from Secrets Manager, or the boot stops: an empty or wrong password must never reach Dify.
# With a JSON key, the value of that key in a JSON secret (as RDS-managed secrets are).
read_secret() {
  local arn="$1" key="${2:-}" value region
  region="$(secret_region "$arn")" || exit 1
  value="$(aws secretsmanager get-secret-value --secret-id "$arn" --region "$region" --query SecretString --output text)" ||
    fail "reading secret $arn from Secrets Manager (the instance profile needs secretsmanager:GetSecretValue on it)"
  if [ -n "$key" ]; then
    value="$(printf '%s' "$value" | python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; sys.stdout.write(v if isinstance(v, str) else json.dumps(v))' "$key")" ||
      fail "secret $arn is not a JSON object with the key \"$key\" (password_secret_key)"
  fi
  [ -n "$value" ] || fail "secret $arn is empty"
  printf '%s' "$value"
}

# Percent-encodes a value for a URL's user-info part (read on stdin, so it never shows in a process list).
url_encode() {
  python3 -c 'import sys, urllib.parse; sys.stdout.write(urllib.parse.quote(sys.stdin.read(), safe=""))'
}

# Everything Dify's .env gets: the provider's settings and the user's env, the generated secrets, the passwords of
# external services and secret_env values from Secrets Manager, the keys Dify reads under a second name, and the
# Celery broker's URL derived from the one Redis host, port, password and TLS setting.
build_env() {
  local name line alias source scheme auth=""
  load_env_lines "$SETTINGS.compose"
  while IFS= read -r line; do
    name="${line%%=*}"
    case " ${DIFY_GENERATED_SECRETS:-} " in *" $name "*) DIFY_ENV["$name"]="${line#*=}" ;; esac
  done <"$SECRETS_FILE"
  if [ -n "${DIFY_DB_PASSWORD_SECRET_ARN:-}" ]; then
    DIFY_ENV[DB_PASSWORD]="$(read_secret "$DIFY_DB_PASSWORD_SECRET_ARN" "${DIFY_DB_PASSWORD_SECRET_KEY:-}")" || exit 1
  fi
  if [ -n "${DIFY_REDIS_PASSWORD_SECRET_ARN:-}" ]; then
    DIFY_ENV[REDIS_PASSWORD]="$(read_secret "$DIFY_REDIS_PASSWORD_SECRET_ARN" "${DIFY_REDIS_PASSWORD_SECRET_KEY:-}")" || exit 1
  fi
  # dify.secret_env: KEY=ARN lines; each value is read from Secrets Manager.
  if [ -f "$SETTINGS.secret-env" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in '' | '#'*) continue ;; esac
      DIFY_ENV["${line%%=*}"]="$(read_secret "${line#*=}")" || exit 1
    done <"$SETTINGS.secret-env"
  fi
  for line in ${DIFY_SECRET_ALIASES:-}; do
    alias="${line%%=*}"
    source="${line#*=}"
    DIFY_ENV["$alias"]="${DIFY_ENV[$source]}"
  done
  scheme=redis
  [ "${DIFY_ENV[REDIS_USE_SSL]:-false}" = true ] && scheme=rediss
  if [ -n "${DIFY_ENV[REDIS_PASSWORD]:-}" ]; then
    auth=":$(printf '%s' "${DIFY_ENV[REDIS_PASSWORD]}" | url_encode)@" || fail "encoding the Redis password"
  fi
  DIFY_ENV[CELERY_BROKER_URL]="$scheme://$auth${DIFY_ENV[REDIS_HOST]:-redis}:${DIFY_ENV[REDIS_PORT]:-6379}/1"
  DIFY_ENV[BROKER_USE_SSL]="${DIFY_ENV[REDIS_USE_SSL]:-false}"
}

# A value as Compose's .env parser reads it back byte for byte: double quotes, in which \ " and newlines are escaped
# and $ is doubled (unquoted values are interpolated and cut at " #").
env_quote() {
  local v="$1"
  v="${v//\\/\\\\}"
  v="${v//\"/\\\"}"
  v="${v//\$/\$\$}"
  v="${v//$'\n'/\\n}"
  printf '"%s"' "$v"
}

# Writes Dify's .env anew from the release's .env.example: each key DIFY_ENV holds replaces its line where the example
# has it (so lines below that interpolate it see it), the rest follow at the end. Nothing from an earlier .env or
# release survives, so a key removed from the configuration is gone.
write_env() {
  local example="$1" target="$2" line key
  local -A written=()
  (
    umask 077
    while IFS= read -r line || [ -n "$line" ]; do
      key="${line%%=*}"
      if [[ "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && [ -n "${DIFY_ENV[$key]+set}" ]; then
        printf '%s=%s\n' "$key" "$(env_quote "${DIFY_ENV[$key]}")"
      else
        printf '%s\n' "$line"
      fi
    done <"$example"
  ) >"$target.new"
  while IFS= read -r line; do
    [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] && written["${BASH_REMATCH[1]}"]=1
  done <"$example"
  printf '\n# Set by terraform-provider-dify (keys the release does not list)\n' >>"$target.new"
  while IFS= read -r key; do
    [ -n "${written[$key]:-}" ] || printf '%s=%s\n' "$key" "$(env_quote "${DIFY_ENV[$key]}")" >>"$target.new"
  done < <(printf '%s\n' "${!DIFY_ENV[@]}" | sort)
  chmod 0600 "$target.new"
  mv "$target.new" "$target"
}

# A file from s3://bucket/key (with the instance profile) or https://, kept only when its SHA-256 is the one pinned in
# the stack's configuration; on a mismatch it is deleted and the boot stops before anything starts.
fetch_verified() {
  local url="$1" sha256="$2" dest="$3" what="$4" actual region
  rm -f "$dest"
  case "$url" in
    s3://*)
      region="$(instance_region)" || exit 1
      aws s3 cp --only-show-errors --region "$region" "$url" "$dest" ||
        fail "downloading $what from $url (the instance profile needs s3:GetObject on it, and the subnet a way to S3: a NAT or the S3 gateway endpoint)" ;;
    *) curl -fsSL --retry 3 -o "$dest" "$url" || fail "downloading $what from $url" ;;
  esac
  actual="$(sha256sum "$dest" | cut -d ' ' -f 1)"
  if [ "$actual" != "$sha256" ]; then
    rm -f "$dest"
    fail "$what from $url has SHA-256 $actual, not the pinned $sha256: not using it, nothing started. Fix the file or its checksum in the dify block"
  fi
}

# Docker and Compose v2 from the distribution's packages (dnf on Amazon Linux, apt on Debian and Ubuntu) when the
# image lacks them. The Compose plugin, when no package has it: from compose_plugin_url (checksum pinned), else from
# its GitHub release. An image with `docker compose` already working downloads nothing.
install_packages() {
  if command -v dnf >/dev/null; then
    dnf install -y -q "$@"
  elif command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  else
    fail "no dnf or apt-get to install $* with: use an image that has them (ami_id)"
  fi
}

install_docker() {
  local plugins="${DIFY_CLI_PLUGINS:-/usr/local/lib/docker/cli-plugins}"
  if ! command -v docker >/dev/null; then
    if command -v dnf >/dev/null; then install_packages docker; else install_packages docker.io; fi
  fi
  systemctl enable --now docker
  if ! docker compose version >/dev/null 2>&1 && command -v apt-get >/dev/null; then
    install_packages docker-compose-v2 >/dev/null 2>&1 || install_packages docker-compose-plugin >/dev/null 2>&1 || true
  fi
  if ! docker compose version >/dev/null 2>&1; then
    mkdir -p "$plugins"
    if [ -n "${DIFY_COMPOSE_PLUGIN_URL:-}" ]; then
      fetch_verified "$DIFY_COMPOSE_PLUGIN_URL" "$DIFY_COMPOSE_PLUGIN_SHA256" "$plugins/docker-compose" "the Docker Compose plugin"
    else
      curl -fsSL -o "$plugins/docker-compose" \
        "https://github.com/docker/compose/releases/download/${DIFY_COMPOSE_VERSION}/docker-compose-linux-$(uname -m)" ||
        fail "downloading Docker Compose $DIFY_COMPOSE_VERSION from GitHub (without internet access, set compose_plugin_url or use an image with the plugin)"
    fi
    chmod +x "$plugins/docker-compose"
  fi
}

# The release's docker/ directory from release_url: a tarball holding docker/ at its top, or under one top directory
# as GitHub's source archives do (dify-1.13.3/docker/).
unpack_release() {
  local dir="$1" top
  fetch_verified "$DIFY_RELEASE_URL" "$DIFY_RELEASE_SHA256" "$dir.tar" "Dify $DIFY_VERSION's release tarball"
  mkdir -p "$dir.partial"
  tar -xf "$dir.tar" -C "$dir.partial" || fail "unpacking $DIFY_RELEASE_URL (a tarball of the release's docker/ directory)"
  rm -f "$dir.tar"
  if [ ! -d "$dir.partial/docker" ]; then
    for top in "$dir.partial"/*/; do
      if [ -d "${top}docker" ]; then
        mv "${top}docker" "$dir.partial/docker"
        rm -rf "$top"
        break
      fi
    done
  fi
  [ -d "$dir.partial/docker" ] || fail "$DIFY_RELEASE_URL holds no docker/ directory (at its top, or under one top directory)"
  echo "$DIFY_RELEASE_SHA256" >"$dir.partial/.dify-release-sha256"
}

fetch_dify() {
  # The Compose files of the release tag, never the moving main branch: from release_url when set (checksum pinned),
  # else cloned from GitHub. A new version is fetched beside the old; a tarball whose pinned checksum changed, again.
  local dir="$RELEASES/$DIFY_VERSION"
  if [ ! -d "$dir/docker" ] || [ "$(cat "$dir/.dify-release-sha256" 2>/dev/null)" != "${DIFY_RELEASE_SHA256:-}" ]; then
    rm -rf "$dir.partial"
    mkdir -p "$RELEASES"
    if [ -n "${DIFY_RELEASE_URL:-}" ]; then
      unpack_release "$dir"
    else
      command -v git >/dev/null || install_packages git
      git clone --quiet --depth 1 --branch "$DIFY_VERSION" https://github.com/langgenius/dify.git "$dir.partial" ||
        fail "fetching Dify $DIFY_VERSION from GitHub (without internet access, set release_url)"
    fi
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  ln -sfn "$dir" "$RELEASES/current"
}

# Every data path under docker/volumes (db, redis, weaviate, app/storage, plugin_daemon, sandbox) on the data volume:
# the release's own files there (configs, init scripts) are copied once without overwriting, then docker/volumes
# becomes a link to it. Only once the volume is mounted, so nothing lands on the root disk under the mount point.
link_volumes() {
  local dir="$RELEASES/current/docker"
  mkdir -p "$DATA_DIR/volumes"
  if [ ! -L "$dir/volumes" ]; then
    if [ -d "$dir/volumes" ]; then cp -an "$dir/volumes/." "$DATA_DIR/volumes/"; fi
    rm -rf "$dir/volumes"
    ln -s "$DATA_DIR/volumes" "$dir/volumes"
  fi
}

# An image reference moved to the registry, its repository path and tag (or digest) kept: Docker Hub's images under
# their full name (postgres:15-alpine -> REGISTRY/library/postgres:15-alpine, langgenius/dify-api:1.13.3 ->
# REGISTRY/langgenius/dify-api:1.13.3), another registry's under its host (quay.io/coreos/etcd:v3.5.5 ->
# REGISTRY/quay.io/coreos/etcd:v3.5.5). An image already on the registry's host is left as it is.
registry_image() {
  local image="$1" registry="$2" first="${1%%/*}"
  case "$image" in "${registry%%/*}"/*)
    printf '%s\n' "$image"
    return 0
    ;;
  esac
  if [ "$first" = docker.io ] || [ "$first" = index.docker.io ]; then
    image="${image#*/}"
    first="${image%%/*}"
  fi
  # A first part with no dot, no port and not localhost is a Docker Hub namespace; none at all, an official image.
  [ "$first" = "$image" ] && image="library/$image"
  printf '%s/%s\n' "$registry" "$image"
}

# With image_registry: docker-compose.images.yaml (in COMPOSE_FILE) gives every service of the release, in every
# profile and with image_overrides applied, its image on the registry, as Compose itself resolves the files with the
# env file given (the settings-only one: no secret takes part in an image's name).
write_images_override() {
  local files=(--env-file "$1" -f docker-compose.yaml) profiles=() profile listed resolved service image
  [ -f docker-compose.override.yaml ] && files+=(-f docker-compose.override.yaml)
  listed="$(docker compose "${files[@]}" config --profiles)" || fail "listing the profiles of Dify $DIFY_VERSION's compose file"
  for profile in $listed; do profiles+=(--profile "$profile"); done
  # The resolved project holds the env file's values: it only passes through this pipe, never a file or the log.
  resolved="$(docker compose "${files[@]}" "${profiles[@]}" config --format json |
    python3 -c 'import json, sys; [print(n, s["image"]) for n, s in sorted(json.load(sys.stdin)["services"].items()) if s.get("image")]')" ||
    fail "resolving the images of Dify $DIFY_VERSION's compose file"
  {
    echo "# Written by dify-bootstrap: every image from $DIFY_IMAGE_REGISTRY (dify.image_registry)."
    echo "services:"
    while read -r service image; do
      [ -n "$service" ] || continue
      printf '  %s:\n    image: "%s"\n' "$service" "$(registry_image "$image" "$DIFY_IMAGE_REGISTRY")"
    done <<<"$resolved"
  } >docker-compose.images.yaml
}

# ECR (a host such as 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com) with the instance profile's token, passed
# on a pipe; any other registry is pulled from as Docker is configured on the image.
registry_login() {
  local host="${DIFY_IMAGE_REGISTRY%%/*}" region
  case "$host" in
    *.dkr.ecr.*.amazonaws.com | *.dkr.ecr.*.amazonaws.com.cn)
      region="${host#*.dkr.ecr.}"
      region="${region%%.*}"
      aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$host" >/dev/null ||
        fail "logging in to $host with the instance profile (it needs ecr:GetAuthorizationToken, and the subnet a way to the ecr.api endpoint)"
      ;;
  esac
}

# The project's files beside the release's compose file: the provider's override (image_overrides and the like) and,
# with image_registry, docker-compose.images.yaml, which COMPOSE_FILE names for every later `docker compose`.
configure_project() {
  if [ -f "$SETTINGS_DIR/docker-compose.override.yaml" ]; then
    cp "$SETTINGS_DIR/docker-compose.override.yaml" docker-compose.override.yaml
  else
    rm -f docker-compose.override.yaml
  fi
  rm -f docker-compose.images.yaml
  set_compose_file
}

# COMPOSE_FILE for Dify's .env (and the settings-only env of the pull), set again for each as DIFY_ENV is rebuilt.
set_compose_file() {
  if [ -n "${DIFY_IMAGE_REGISTRY:-}" ]; then
    DIFY_ENV[COMPOSE_FILE]="docker-compose.yaml"
    [ -f docker-compose.override.yaml ] && DIFY_ENV[COMPOSE_FILE]+=":docker-compose.override.yaml"
    DIFY_ENV[COMPOSE_FILE]+=":docker-compose.images.yaml"
  fi
  return 0
}

# Pulls every image the project will run, before the data volume is needed: the images and profiles `up` resolves
# depend on the provider's settings, image_overrides and image_registry, never on a secret, so the release's
# .env.example with the provider's settings (no secret in it) resolves the same ones Dify's .env will. Only the
# services whose image is not on the instance are pulled, so a reboot asks no registry anything (`pull --policy
# missing` would: Compose pulls a `:latest` image again even when it is present, and Dify's nginx, squid and busybox
# are `:latest`).
pull_images() {
  local env_file=.env.prepare missing=() service image resolved started=$SECONDS
  load_env_lines "$SETTINGS.compose"
  write_env .env.example "$env_file"
  if [ -n "${DIFY_IMAGE_REGISTRY:-}" ]; then
    write_images_override "$env_file"
    registry_login
  fi
  resolved="$(docker compose --env-file "$env_file" config --format json |
    python3 -c 'import json, sys; [print(n, s["image"]) for n, s in sorted(json.load(sys.stdin)["services"].items()) if s.get("image")]')" ||
    fail "resolving the images of Dify $DIFY_VERSION's compose file"
  while read -r service image; do
    [ -n "$service" ] || continue
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$service")
  done <<<"$resolved"
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "dify-bootstrap: pulling the images of ${missing[*]} (Dify $DIFY_VERSION)"
    docker compose --env-file "$env_file" pull --quiet "${missing[@]}" ||
      fail "pulling the images of Dify $DIFY_VERSION from ${DIFY_IMAGE_REGISTRY:-their registries}"
    echo "dify-bootstrap: images pulled in $((SECONDS - started))s"
  else
    echo "dify-bootstrap: every image of Dify $DIFY_VERSION is on this instance already"
  fi
  rm -f "$env_file"
}

start_dify() {
  # Docker was stopped while data moved onto a new volume (stop_docker): started again now the volume is mounted.
  if command -v systemctl >/dev/null; then systemctl start docker || fail "starting Docker"; fi
  if ! docker compose up -d --remove-orphans; then
    # Docker's restart policy can start a container at the moment Compose does (containerd: "task ... already
    # exists"), seen after Docker was stopped and started to move data. `up` is idempotent: once more, then fail.
    echo "dify-bootstrap: docker compose up failed; trying once more in 10 s"
    sleep 10
    docker compose up -d --remove-orphans || fail "docker compose up for Dify $DIFY_VERSION (pulling images from ${DIFY_IMAGE_REGISTRY:-their registries})"
  fi
  echo "dify-bootstrap: Dify $DIFY_VERSION started"
}

main() {
  local volume_id="${DIFY_DATA_VOLUME_ID:-}"
  [ -n "$volume_id" ] || volume_id="$(imds_tag dify:data-volume || true)"
  # Everything that does not need the data volume comes first, so a replacement can get ready while the instance it
  # replaces still serves: Docker, the release, every image. The marker line below (on the console, which EC2's
  # GetConsoleOutput returns) tells the provider it may now stop the old instance and move the volume here.
  if [ "${DIFY_SKIP_COMPOSE:-}" != "1" ]; then
    install_docker
    fetch_dify
    cd "$RELEASES/current/docker"
    configure_project
    pull_images
    echo "dify-bootstrap: DIFY-PREPARED $DIFY_VERSION"
  fi
  if [ -n "$volume_id" ]; then
    mount_data_volume "$volume_id"
  else
    echo "dify-bootstrap: no data volume for this instance; data stays on the root volume"
    mkdir -p "$DATA_DIR"
  fi
  adopt_layout
  make_secrets
  build_env
  [ "${DIFY_SKIP_COMPOSE:-}" = "1" ] && return 0
  link_volumes
  set_compose_file
  write_env .env.example .env
  start_dify
}

case "${1:-}" in
  grow) grow_mounted ;;
  *) main "$@" ;;
esac
