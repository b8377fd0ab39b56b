#!/usr/bin/env python3
"""Runs in the guest (through the guest agent): what the next program would see, as one JSON document.

    python3 /mnt/twin/probe.py SERIAL [--quick]

SERIAL is the data volume's NVMe serial (the volume id without its dash); "" when the VM has none.
"""

import datetime
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

DATA = "/opt/dify-data"


def run(*cmd, timeout=60):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)


def data_device(serial):
    """The disk of the NVMe namespace whose controller has this serial, found from the controller's side (the product
    looks from the disk's, so the two do not agree by construction). Without the kernel's native multipath the
    namespace is /sys/class/nvme/<ctrl>/<ctrl>n<N>. With it (QEMU 10's controller reports a shared namespace) the
    controller holds the hidden path nvme<S>c<C>n<N>, which has no device node, and the disk is nvme<S>n<N>, a child of
    the subsystem nvme-subsys<S>, which also links the controller (Linux, drivers/nvme/host/multipath.c names both)."""
    if not serial:
        return None
    for path in glob.glob("/sys/class/nvme/*/serial"):
        if open(path).read().strip() != serial:
            continue
        ctrl = os.path.basename(os.path.dirname(path))
        for ns in sorted(glob.glob(f"/sys/class/nvme/{ctrl}/nvme*n*")):
            name = os.path.basename(ns)
            path_of = re.fullmatch(r"nvme(\d+)c\d+n(\d+)", name)
            if path_of:
                subsystem = f"/sys/class/nvme-subsystem/nvme-subsys{path_of[1]}"
                head = f"nvme{path_of[1]}n{path_of[2]}"
                if os.path.exists(f"{subsystem}/{ctrl}") and os.path.isdir(f"{subsystem}/{head}") and os.path.exists("/dev/" + head):
                    return "/dev/" + head
            elif re.fullmatch(r"nvme\d+n\d+", name) and os.path.exists("/dev/" + name):
                return "/dev/" + name
    return None


def nvme_disks():
    """Every NVMe disk as sysfs shows it (what the product's find_device reads): the parent its `device` links, that
    parent's serial, and whether the disk has a device node. Recorded so a QEMU or kernel that names disks otherwise
    shows how in probe-*.json."""
    disks = {}
    for block in sorted(glob.glob("/sys/block/nvme*")):
        parent = os.path.join(block, "device")
        try:
            serial = open(os.path.join(parent, "serial")).read().strip()
        except OSError:
            serial = None
        disks[os.path.basename(block)] = {"parent": os.path.realpath(parent), "serial": serial,
                                          "node": os.path.exists("/dev/" + os.path.basename(block))}
    return disks


def mount_info():
    rc, out, _ = run("findmnt", "-J", "-b", "-o", "SOURCE,FSTYPE,UUID,SIZE,OPTIONS", "--mountpoint", DATA)
    if rc != 0:
        return None
    fs = json.loads(out)["filesystems"]
    return fs[-1] if fs else None


def quick(serial):
    dev = data_device(serial)
    return {
        "boot_id": open("/proc/sys/kernel/random/boot_id").read().strip(),
        "uptime": float(open("/proc/uptime").read().split()[0]),
        "system": run("systemctl", "is-system-running")[1].strip(),
        "dify": run("systemctl", "is-active", "dify.service")[1].strip(),
        "cloud_final": run("systemctl", "is-active", "cloud-final.service")[1].strip(),
        "device": dev,
        "mount": mount_info(),
    }


def parse_time(s):
    # Docker's RFC 3339 with nanoseconds, UTC.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", s)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + float("0" + (m.group(2) or ".0")[:10])


def containers():
    rc, out, _ = run("docker", "ps", "-aq", timeout=60)
    ids = out.split()
    if rc != 0 or not ids:
        return []
    rc, out, _ = run("docker", "inspect", *ids, timeout=60)
    result = []
    for c in json.loads(out) if rc == 0 else []:
        state = c["State"]
        result.append({
            "name": c["Name"].lstrip("/"),
            "service": c["Config"].get("Labels", {}).get("com.docker.compose.service", ""),
            "image": c["Config"]["Image"],
            "status": state["Status"],
            "running": state["Running"],
            "restarting": state["Restarting"],
            "exit_code": state["ExitCode"],
            "restarts": c.get("RestartCount", 0),
            "started_at": parse_time(state["StartedAt"]),
            "health": (state.get("Health") or {}).get("Status"),
            "mounts": [{"source": m.get("Source"), "destination": m.get("Destination")} for m in c.get("Mounts", [])],
        })
    return result


def tail(path, n=40):
    try:
        return open(path, errors="replace").read().splitlines()[-n:]
    except OSError:
        return []


def main():
    serial = sys.argv[1] if len(sys.argv) > 1 else ""
    facts = quick(serial)
    if "--quick" in sys.argv:
        print(json.dumps(facts))
        return
    dev = facts["device"]
    if dev:
        facts["device_size"] = int(open(f"/sys/class/block/{os.path.basename(dev)}/size").read()) * 512
        rc, out, err = run("blkid", "-p", "-o", "export", dev)
        facts["blkid_p"] = {"rc": rc, "out": out.strip(), "err": err.strip()}
    else:
        facts["by_id"] = sorted(os.listdir("/dev/disk/by-id")) if os.path.isdir("/dev/disk/by-id") else []
        facts["nvme_serials"] = {p.split("/")[-2]: open(p).read().strip() for p in glob.glob("/sys/class/nvme/*/serial")}
    facts["nvme_disks"] = nvme_disks()
    if facts["mount"]:
        st = os.statvfs(DATA)
        facts["fs_size"] = st.f_blocks * st.f_frsize
        rc, out, _ = run("tune2fs", "-l", facts["mount"]["source"])
        info = dict(l.split(":", 1) for l in out.splitlines() if ":" in l)
        try:
            facts["fs_bytes"] = int(info["Block count"]) * int(info["Block size"])
        except (KeyError, ValueError):
            facts["fs_bytes"] = None
    secrets = os.path.join(DATA, "secrets/dify-secrets.env")
    if os.path.exists(secrets):
        body = open(secrets, "rb").read()
        facts["secrets"] = {"sha256": hashlib.sha256(body).hexdigest(), "mode": oct(os.stat(secrets).st_mode & 0o777),
                            "keys": [line.split(b"=")[0].decode() for line in body.splitlines() if b"=" in line]}
        # What Dify reads: the hash of each generated secret's value in the running release's .env (never a value).
        dotenv = dict(l.split("=", 1) for l in open("/opt/dify/current/docker/.env", errors="replace").read().splitlines()
                      if "=" in l and not l.startswith("#")) if os.path.exists("/opt/dify/current/docker/.env") else {}
        facts["dotenv_secret_sha256"] = {k: hashlib.sha256(dotenv[k].encode()).hexdigest() for k in facts["secrets"]["keys"] if k in dotenv}
    facts["containers"] = containers()
    rc, out, _ = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                     "http://127.0.0.1:80/console/api/ping")
    facts["ping"] = out.strip()
    pgdata = glob.glob(os.path.join(DATA, "volumes/db/data/*/twin-cluster-id")) + glob.glob(os.path.join(DATA, "volumes/db/data/twin-cluster-id"))
    facts["db_cluster"] = open(pgdata[0]).read().strip() if pgdata else None
    facts["db_cluster_path"] = pgdata[0] if pgdata else None
    # The cluster the running database container actually uses (through its bind mount), and its last words.
    facts["db_container"] = None
    for c in facts["containers"]:
        if c["service"] in ("db_postgres", "db"):
            src = [m["source"] for m in c["mounts"] if m["destination"] == "/var/lib/postgresql/data"]
            ids = glob.glob(os.path.join(src[0], "*/twin-cluster-id")) + glob.glob(os.path.join(src[0], "twin-cluster-id")) if src else []
            rc, out, err = run("docker", "logs", "--tail", "5", c["name"])
            facts["db_container"] = {"name": c["name"], "running": c["running"] and not c["restarting"], "source": src[0] if src else None,
                                     "cluster": open(ids[0]).read().strip() if ids else None, "log": (out + err).splitlines()[-5:]}
    for c in facts["containers"]:
        if c["service"] == "api":
            src = [m["source"] for m in c["mounts"] if m["destination"] == "/app/api/storage"]
            facts["api_storage"] = sorted(os.path.relpath(os.path.join(d, f), src[0]) for d, _, fs in os.walk(src[0]) for f in fs)[:50] if src else None
    # What is under /opt/dify-data on the root filesystem itself (hidden under the mount when the volume is mounted).
    rc, out, err = run("unshare", "-m", "sh", "-c",
                       "mkdir -p /run/twin-rootview && mount --bind / /run/twin-rootview && "
                       "cd /run/twin-rootview/opt/dify-data 2>/dev/null && find . -mindepth 1 | head -50")
    facts["rootfs_data_entries"] = [l for l in out.splitlines() if l]
    # When the data filesystem was mounted in this boot (kernel log), to compare with the containers' start times.
    rc, out, _ = run("journalctl", "-k", "-b", "0", "-o", "short-unix", "--no-pager", "-g", "EXT4-fs \\(nvme")
    facts["data_mount_times"] = [float(l.split()[0]) for l in out.splitlines() if "mounted filesystem" in l and l[:1].isdigit()]
    rc, out, _ = run("journalctl", "-b", "0", "-o", "short-unix", "--no-pager", "-u", "dify.service")
    facts["dify_journal"] = out.splitlines()[-60:]
    rc, out, _ = run("journalctl", "-b", "0", "-o", "short-unix", "--no-pager", "-u", "docker.service", "-g", "Started|Starting")
    facts["docker_journal"] = out.splitlines()[-10:]
    facts["bootstrap_log"] = tail("/var/log/dify-bootstrap.log", 60)
    facts["fstab"] = open("/etc/fstab").read().splitlines()
    rc, out, _ = run("systemctl", "show", "dify.service", "-p", "Result,ExecMainStatus,ActiveEnterTimestampMonotonic,InactiveExitTimestampMonotonic")
    facts["dify_show"] = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    rc, out, _ = run("sh", "-c", "dpkg-query -W -f '${Status}' docker.io 2>/dev/null")
    facts["docker_io_status"] = out.strip()
    ud = "/var/lib/cloud/instance/user-data.txt"
    facts["user_data_sha256"] = hashlib.sha256(open(ud, "rb").read()).hexdigest() if os.path.exists(ud) else None
    rc, out, _ = run("sh", "-c", "command -v docker; docker compose version 2>&1 | head -1; command -v dnf apt-get")
    facts["tools"] = out.split("\n")
    facts["twin_git"] = tail("/var/log/twin-git.log", 10)
    facts["twin_aws"] = tail("/var/log/twin-aws.log", 20)
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
