#!/usr/bin/env python3
"""The VM twin's scenarios: boots the provider's user data in real VMs (twin.py) and checks what the next program sees.

    python3 tests/vm/scenarios.py [--user-data FILE] [--release DIR] [--only a,b,...] [--jobs 2] [--keep]

Prints `PASS name` or `FAIL name: reason` per scenario, then `N passed, M failed`; exits 1 when M > 0.
Progress goes to stderr; every VM's console, QEMU log and probes stay in the work directory (kept on failure).

Scenarios (each asserts on the guest's mounts, containers, the data volume's files, HTTP, the journal):
  a first boot on a blank volume      b restart (stop/start)       c replacement instance, same volume
  d volume attached after boot        e volume blkid cannot probe  f volume grown (with b's restart)
  g volume made from a Compose install (docs/guides/move-compose-to-aws.md)
  h volume in the seed HCL module's layout (/opt/dify-data/{postgres,redis,weaviate})
  i apt-based guest (Docker not on the image)     j volume added to a stack that had none
  k two instances of one stack (dify:index 1 booted first, then 0), one shared secret (--shared-user-data)
  l pre-warmed replacement: the new VM gets ready without the volume while the old one serves (issue 17)
  m volume grown while the instance runs (online, through udev and dify-grow.service)
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import switch  # noqa: E402
import twin  # noqa: E402

ROOT = twin.ROOT
GiB = 1 << 30
DATA = "/opt/dify-data"
# How long a boot may take to settle before it counts as hung. Passing boots settle in 130-830 s here (the apt guest
# is the slowest); the margin is for a slower or busier CI machine, and only delays the report of a real hang.
BOOT_TIMEOUT = int(os.environ.get("DIFY_VM_BOOT_TIMEOUT", "1500"))
OLD_DB_PASSWORD = "difyai123456"  # what a Compose install's PostgreSQL was initialised with (upstream .env default)

NAMES = {
    "a": "a_first_boot_blank_volume",
    "b": "b_reboot_keeps_everything",
    "c": "c_replacement_instance_same_volume",
    "d": "d_volume_attached_after_boot",
    "e": "e_volume_blkid_cannot_probe",
    "f": "f_volume_grown",
    "g": "g_migration_from_compose_install",
    "h": "h_migration_from_seed_module_layout",
    "i": "i_apt_based_guest",
    "j": "j_volume_added_to_volumeless_stack",
    "k": "k_two_instances_share_one_secret",
    "l": "l_prewarmed_replacement",
    "m": "m_volume_grown_while_running",
}
SHARED_SECRET = "dify/prd/app-secrets"  # boot::shared_secret_name("prd"), as tests/golden/user-data-shared-secrets.yaml names it
# What every instance of a stack must hold alike (DIFY_GENERATED_SECRETS of the default configuration).
SHARED_KEYS = ("SECRET_KEY", "INIT_PASSWORD", "SANDBOX_API_KEY", "PLUGIN_DAEMON_KEY", "PLUGIN_DIFY_INNER_API_KEY")

_print_lock = threading.Lock()
results = {}


def log(msg):
    with _print_lock:
        print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def report(key, ok, reason=""):
    results[key] = (ok, reason)
    with _print_lock:
        print(f"PASS {NAMES[key]}" if ok else f"FAIL {NAMES[key]}: {reason}", flush=True)


class Failed(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Failed(reason)


# --- disks made on the host ------------------------------------------------------------------------------------------
def mkfs_from_dir(path, tree, size):
    """An ext4 image of a directory tree, as the guide makes one: mkfs.ext4 -d DIR -E root_owner=0:0."""
    with tempfile.TemporaryDirectory() as d:
        for rel, content in tree.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(content)
            if rel.startswith("secrets/"):
                os.chmod(p, 0o600)
        os.chmod(os.path.join(d, "secrets"), 0o700) if os.path.isdir(os.path.join(d, "secrets")) else None
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", d, "-E", "root_owner=0:0", path, size], check=True,
                       stdout=subprocess.DEVNULL)


def pgdata_files(prefix, cluster_id, password):
    """The stand-in postgres's PGDATA (what tests/vm/share/standin/postgres writes on first start)."""
    return {f"{prefix}/PG_VERSION": "15\n",
            f"{prefix}/twin-password.sha256": hashlib.sha256(password.encode()).hexdigest() + "\n",
            f"{prefix}/twin-cluster-id": cluster_id + "\n"}


def ambiguous_disk(path, size):
    """An ext4 filesystem with a stray FAT boot sector over its first 512 bytes (which ext4 leaves unused):
    `blkid -p` exits 8, "ambivalent result (probably more filesystems on the device)"."""
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "dify-data", path, size], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as d:
        fat = os.path.join(d, "fat.img")
        subprocess.run(["mkfs.vfat", "-C", fat, "65536"], check=True, stdout=subprocess.DEVNULL)
        boot = open(fat, "rb").read(512)
    with open(path, "r+b") as f:
        f.write(boot)
    rc = subprocess.run(["blkid", "-p", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    check(rc == 8, f"the erroring disk should make blkid -p exit 8, got {rc}")


def host_blkid(path):
    p = subprocess.run(["blkid", "-p", "-o", "export", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


# --- waiting for the guest and reading it ------------------------------------------------------------------------
def quick(vm, serial):
    rc, out, err = vm.sh(f"sh /mnt/twin/quick.sh '{serial}'", timeout=120)
    if rc != 0:
        raise RuntimeError(f"quick probe failed: {err[-500:]}")
    q = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: (q.get(k) or None) if k in ("device", "mount") else q.get(k, "") for k in ("boot_id", "system", "dify", "device", "mount", "prepared")}


def settle(vm, serial, timeout=BOOT_TIMEOUT, stuck_after=90, boot_id=None):
    """Waits until the boot is over (systemd: running/degraded, dify.service not activating). Returns (quick facts,
    None) or (quick facts, why it stopped waiting). A bootstrap that has not mounted the data volume stuck_after
    seconds after it appeared, once past its DIFY-PREPARED marker (before it, Docker, the release and the pulls come
    first), is reported, not waited for (it would wait an hour for a name it never finds)."""
    deadline = vm.started + timeout if boot_id is None else time.time() + timeout
    device_seen = None
    q = {}
    while time.time() < deadline:
        if not vm.running():
            return q, "qemu exited"
        try:
            q = quick(vm, serial)
        except Exception as e:  # the agent may be restarting
            log(f"{vm.name}: probe: {e}")
            time.sleep(5)
            continue
        if boot_id and q["boot_id"] == boot_id:
            time.sleep(3)
            continue
        if q["system"] in ("running", "degraded") and q["dify"] != "activating":
            return q, None
        if q["device"] and not q["mount"] and q["dify"] == "activating" and q["prepared"]:
            device_seen = device_seen or time.time()
            if time.time() - device_seen > stuck_after:
                return q, (f"dify-bootstrap had not mounted the data volume {stuck_after}s after {q['device']} "
                           f"(serial {serial}) appeared (dify.service still activating)")
        else:
            device_seen = None
        time.sleep(6)
    return q, f"boot not finished after {timeout}s (system {q.get('system')}, dify.service {q.get('dify')})"


def probe(vm, serial, workdir, label):
    rc, out, err = vm.sh(f"python3 /mnt/twin/probe.py '{serial}'", timeout=300)
    if rc != 0:
        raise RuntimeError(f"probe failed: {err[-800:]}")
    facts = json.loads(out)
    with open(os.path.join(workdir, f"probe-{label}.json"), "w") as f:
        json.dump(facts, f, indent=1)
    return facts


def why_not_mounted(facts, volume_id):
    """A one-line diagnosis for a data volume that is not mounted."""
    lines = [l for l in facts.get("bootstrap_log", []) if "FAILED" in l or "rror" in l]
    hint = f"; bootstrap log: {lines[-1].strip()[:200]}" if lines else ""
    if facts.get("device"):
        by_id = ""
    else:
        by_id = f"; no NVMe with serial {volume_id.replace('-', '')}"
    names = [n for n in facts.get("by_id", []) if n.startswith("nvme-")]
    if facts.get("device"):
        return (f"{DATA} not mounted although the volume is {facts['device']} (serial {volume_id.replace('-', '')} in "
                f"/sys/class/nvme/*/serial; its by-id name is nvme-QEMU_NVMe_Ctrl_<serial>, not "
                f"nvme-Amazon_Elastic_Block_Store_<serial>){hint}")
    return f"{DATA} not mounted{by_id} {names}{hint}"


def running_services(facts):
    return sorted({c["service"] or c["name"] for c in facts["containers"] if c["running"] and not c["restarting"]})


def assert_serving(facts, volume_id):
    """Dify is up on the data volume: mounted, containers running (one-shots exited 0), ping 200, the db on it."""
    check(facts["mount"], why_not_mounted(facts, volume_id))
    check(facts["mount"]["source"] == facts["device"], f"{DATA} is {facts['mount']['source']}, not the data volume {facts['device']}")
    check(facts["mount"]["fstype"] == "ext4", f"{DATA} is {facts['mount']['fstype']}, not ext4")
    check(facts["containers"], f"no containers (dify.service {facts['dify']}; bootstrap log: {' | '.join(facts['bootstrap_log'][-3:])[:300]})")
    bad = [f"{c['name']} {c['status']}{' restarting' if c['restarting'] else ''} exit {c['exit_code']}"
           for c in facts["containers"] if (not c["running"] or c["restarting"]) and not (c["status"] == "exited" and c["exit_code"] == 0)]
    if facts.get("db_container") and not facts["db_container"]["running"]:
        bad.append(f"db: {' | '.join(facts['db_container']['log'][-2:])}")
    check(not bad, "containers not running: " + "; ".join(bad)[:400])
    check(facts["ping"] == "200", f"GET http://127.0.0.1/console/api/ping in the guest answered {facts['ping'] or 'nothing'}")
    check(facts.get("secrets"), f"no secrets file at {DATA}/secrets/dify-secrets.env")
    check(facts["secrets"]["mode"] == "0o600", f"secrets file mode {facts['secrets']['mode']}, not 0600")
    check(facts["db_cluster"], f"no database marker under {DATA}/volumes/db/data")


def assert_ordering(facts):
    """Nothing was written under /opt/dify-data on the root disk, and no container started before the mount."""
    check(not facts["rootfs_data_entries"],
          f"written under {DATA} on the root disk (hidden by the mount): {facts['rootfs_data_entries'][:5]}")
    if facts["data_mount_times"] and facts["containers"]:
        mounted = facts["data_mount_times"][-1]
        early = [c["name"] for c in facts["containers"] if c["started_at"] and c["started_at"] < mounted and c["running"]]
        check(not early, f"containers started before the data volume was mounted: {early}")


def assert_not_started(facts, what):
    running = running_services(facts)
    check(not running, f"{what}, yet containers run: {running}")


# --- the scenarios -----------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, args):
        self.args = args
        self.image = twin.image_dir()
        self.work = args.workdir or tempfile.mkdtemp(prefix="dify-twin-")
        os.makedirs(self.work, exist_ok=True)
        self.user_data = os.path.abspath(args.user_data)
        self.user_data_sha = hashlib.sha256(open(self.user_data, "rb").read()).hexdigest()
        self.release = os.path.abspath(args.release)
        self.timings = []
        self.lock = threading.Lock()

    def timing(self, what, seconds):
        with self.lock:
            self.timings.append((what, seconds))
        log(f"time: {what} {seconds:.0f}s")

    def vm(self, name, disk, user_data=None, **kw):
        wd = os.path.join(self.work, name)
        return twin.VM(wd, self.image, user_data or self.user_data, self.release, data=disk, name=name, smp=self.args.smp,
                       memory_mb=self.args.memory, **kw)

    def disk(self, name, size="4G"):
        return twin.DataDisk(os.path.join(self.work, f"{name}.raw"), size=size)

    def boot(self, vm, serial, label, **kw):
        vm.start()
        log(f"{vm.name}: started ({label})")
        agent = vm.wait_agent(300)
        q, stuck = settle(vm, serial, **kw)
        self.timing(f"{label}: agent {agent:.0f}s, settled", time.time() - vm.started)
        return q, stuck

    def first_boot_checks(self, facts, disk):
        check(facts["user_data_sha256"] == self.user_data_sha,
              f"cloud-init's user data (sha256 {facts['user_data_sha256']}) is not the given file's ({self.user_data_sha})")

    # a → b → f → c: one volume, one instance rebooted twice, then a replacement instance.
    def chain_abfc(self, want):
        disk = self.disk("vol-abfc")
        vm = self.vm("abfc-1", disk)
        state = {}
        try:
            q, stuck = self.boot(vm, disk.serial, "a first boot")
            facts = probe(vm, disk.serial, vm.workdir, "a")
            try:
                self.first_boot_checks(facts, disk)
                assert_serving(facts, disk.volume_id)
                check(facts["blkid_p"]["rc"] == 0 and "TYPE=ext4" in facts["blkid_p"]["out"] and "PTTYPE" not in facts["blkid_p"]["out"],
                      f"the volume should hold exactly one ext4 filesystem: blkid -p {facts['blkid_p']}")
                check(facts["db_cluster_path"].startswith(DATA + "/volumes/db/"), f"db marker at {facts['db_cluster_path']}")
                assert_ordering(facts)
                check(not stuck, stuck)
                report("a", True)
            except Failed as e:
                report("a", False, str(e) if not stuck or facts["mount"] else stuck + "; " + str(e))
            if not facts["mount"]:
                for k in "bfc":
                    if k in want:
                        report(k, False, "not run: the first boot never mounted the data volume (see a)")
                return
            state = {"uuid": facts["mount"]["uuid"], "secrets": (facts.get("secrets") or {}).get("sha256"), "db": facts["db_cluster"]}

            if "b" in want or "f" in want:
                # One restart serves b and f: the instance is stopped, its volume grown (as size_gb does; QEMU's NVMe
                # refuses block_resize while attached), and started again: a reboot as the guest sees it.
                grown = 6 * GiB
                t = time.time()
                clean = vm.shutdown()
                check_clean = clean
                if "f" in want:
                    vm.resize_data(grown)
                vm.start()
                vm.wait_agent(300)
                q, stuck = settle(vm, disk.serial)
                if not check_clean:
                    log("abfc-1: the shutdown before the restart was not clean (killed)")
                self.timing("b/f stop, grow, start: settled", time.time() - t)
                facts = probe(vm, disk.serial, vm.workdir, "b")
                for key in "bf":
                    if key not in want:
                        continue
                    try:
                        check(facts["mount"], why_not_mounted(facts, disk.volume_id))
                        check(facts["mount"]["uuid"] == state["uuid"], f"filesystem UUID changed {state['uuid']} -> {facts['mount']['uuid']}: reformatted")
                        check((facts.get("secrets") or {}).get("sha256") == state["secrets"], "the secrets changed across a reboot")
                        if key == "b":
                            check(facts["db_cluster"] == state["db"], f"database cluster changed {state['db']} -> {facts['db_cluster']}")
                            assert_serving(facts, disk.volume_id)
                            assert_ordering(facts)
                            check(not stuck, stuck)
                        else:
                            check(facts["device_size"] == grown, f"the guest sees {facts['device_size']} bytes, not the grown {grown}")
                            check(facts.get("fs_bytes") and facts["fs_bytes"] >= 0.99 * grown,
                                  f"filesystem is {facts.get('fs_bytes')} bytes on a {grown}-byte device: not grown")
                            assert_serving(facts, disk.volume_id)
                        report(key, True)
                    except Failed as e:
                        report(key, False, str(e))

            t = time.time()
            clean = vm.shutdown()
            self.timing("abfc-1 shutdown", time.time() - t)
            if not clean:
                log("abfc-1: shutdown was not clean (killed)")

            if "c" in want:
                vm2 = self.vm("abfc-2", disk)
                try:
                    q, stuck = self.boot(vm2, disk.serial, "c replacement first boot")
                    facts = probe(vm2, disk.serial, vm2.workdir, "c")
                    try:
                        check(facts["mount"], why_not_mounted(facts, disk.volume_id))
                        check(facts["mount"]["uuid"] == state["uuid"], "filesystem UUID changed: the replacement reformatted the volume")
                        check((facts.get("secrets") or {}).get("sha256") == state["secrets"], "the replacement made new secrets")
                        check(facts["db_cluster"] == state["db"], f"database cluster {state['db']} -> {facts['db_cluster']}")
                        assert_serving(facts, disk.volume_id)
                        check(facts["db_container"] and facts["db_container"]["cluster"] == state["db"],
                              f"the db container does not run the volume's cluster: {facts['db_container']}")
                        assert_ordering(facts)
                        check(not stuck, stuck)
                        report("c", True)
                    except Failed as e:
                        report("c", False, str(e))
                finally:
                    vm2.shutdown()
        finally:
            vm.shutdown()

    def scenario_d(self):
        disk = self.disk("vol-d")
        vm = self.vm("d", disk, attach_data=False)
        try:
            vm.start()
            vm.wait_agent(300)
            # Attach while dify-bootstrap runs (waits for the volume), as EC2 does when attach-volume is slow.
            deadline = time.time() + 420
            while time.time() < deadline:
                try:
                    if quick(vm, disk.serial)["dify"] in ("activating", "active", "failed"):
                        break
                except Exception as e:
                    log(f"d: probe: {e}")
                time.sleep(3)
            time.sleep(20)
            state = quick(vm, disk.serial)["dify"]
            log(f"d: hot-plugging the volume (dify.service {state})")
            vm.hotplug_data()
            q, stuck = settle(vm, disk.serial)
            self.timing("d late attach, settled", time.time() - vm.started)
            facts = probe(vm, disk.serial, vm.workdir, "d")
            check(state == "activating", f"dify.service was already {state} 20s after it started, before the volume was attached: it did not wait")
            assert_serving(facts, disk.volume_id)
            assert_ordering(facts)
            check(not stuck, stuck)
            report("d", True)
        except Failed as e:
            report("d", False, str(e))
        finally:
            vm.shutdown()

    def scenario_e(self):
        path = os.path.join(self.work, "vol-e.raw")
        ambiguous_disk(path, "2G")
        before = host_blkid(path)
        disk = twin.DataDisk(path)
        vm = self.vm("e", disk)
        try:
            q, stuck = self.boot(vm, disk.serial, "e erroring device", stuck_after=90)
            facts = probe(vm, disk.serial, vm.workdir, "e")
            vm.shutdown()
            after = host_blkid(path)
            console = vm.console_text()
            check(after == before, f"the volume was changed (blkid -p before: rc {before[0]}, after: rc {after[0]} {after[1].split()[:2]}): it was formatted")
            check(not facts["mount"], f"{DATA} is mounted from {facts['mount'] and facts['mount']['source']}")
            assert_not_started(facts, "the volume cannot be probed")
            check(not facts["rootfs_data_entries"], f"written under {DATA} on the root disk: {facts['rootfs_data_entries'][:5]}")
            check(facts["dify"] == "failed", f"dify.service is {facts['dify']}, not failed" + (f" ({stuck})" if stuck else ""))
            loud = [l for l in console.splitlines() if "dify-bootstrap" in l and ("FAIL" in l or "ambiv" in l or "refus" in l)]
            check(loud, "no dify-bootstrap failure line on the serial console")
            report("e", True)
        except Failed as e:
            report("e", False, str(e))
        finally:
            vm.shutdown()

    def migration(self, key, tree, expect_cluster, volume_dirs):
        path = os.path.join(self.work, f"vol-{key}.raw")
        mkfs_from_dir(path, tree, "4G")
        disk = twin.DataDisk(path)
        vm = self.vm(key, disk)
        try:
            q, stuck = self.boot(vm, disk.serial, f"{key} migration")
            facts = probe(vm, disk.serial, vm.workdir, key)
            check(facts["mount"], (stuck + "; " if stuck else "") + why_not_mounted(facts, disk.volume_id))
            db = facts.get("db_container")
            check(db, f"no database container (containers: {running_services(facts)}; bootstrap: {' | '.join(facts['bootstrap_log'][-2:])[:300]})")
            check(db["cluster"] == expect_cluster,
                  f"the database container runs cluster {db['cluster']} from {db['source']}, not the migrated {expect_cluster} "
                  f"(the volume's {volume_dirs} are not where the release's compose file looks)")
            check(db["running"], f"the migrated database refuses to start: {' | '.join(db['log'][-2:])}")
            if key == "g":
                check(facts.get("api_storage") and "privkeys/tenant-1/private.pem" in facts["api_storage"],
                      f"the tenant keys app/storage/privkeys are not in the api's storage: {facts.get('api_storage')}")
            assert_serving(facts, disk.volume_id)
            report(key, True)
        except Failed as e:
            report(key, False, str(e))
        finally:
            vm.shutdown()

    def scenario_g(self):
        # docs/guides/move-compose-to-aws.md: the image's root holds volumes/ (the install's docker/volumes: db/,
        # redis/, weaviate/, app/storage/ with the tenants' keys) and secrets/import.env (the old .env's secrets).
        cluster = "compose-" + uuid.uuid4().hex[:12]
        tree = {**pgdata_files("volumes/db/data/pgdata", cluster, OLD_DB_PASSWORD),
                "volumes/redis/data/twin-redis-id": "compose-redis\n",
                "volumes/weaviate/twin-marker": "compose-weaviate\n",
                "volumes/app/storage/privkeys/tenant-1/private.pem": "-----BEGIN RSA PRIVATE KEY-----\ntwin\n-----END RSA PRIVATE KEY-----\n",
                "volumes/app/storage/upload_files/tenant-1/file.txt": "an upload\n",
                "secrets/import.env": f"SECRET_KEY=sk-old-compose-install\nDB_PASSWORD={OLD_DB_PASSWORD}\nREDIS_PASSWORD={OLD_DB_PASSWORD}\n"}
        self.migration("g", tree, cluster, "volumes/ (from the Compose install) and secrets/import.env")

    def scenario_h(self):
        # The seed HCL module's volume: postgres/, redis/, weaviate/ at the root of /opt/dify-data; the guide
        # (docs/guides/migrate-from-hcl-module.md, section 5) adds secrets/import.env from the module's .env.
        cluster = "seed-" + uuid.uuid4().hex[:12]
        tree = {**pgdata_files("postgres/pgdata", cluster, OLD_DB_PASSWORD),
                "redis/twin-redis-id": "seed-redis\n",
                "weaviate/twin-marker": "seed-weaviate\n",
                "secrets/import.env": f"DB_PASSWORD={OLD_DB_PASSWORD}\nREDIS_PASSWORD={OLD_DB_PASSWORD}\n"}
        self.migration("h", tree, cluster, "postgres/ redis/ weaviate/ and secrets/import.env")

    def scenario_i(self):
        disk = self.disk("vol-i")
        vm = self.vm("i", disk, append="twin.nodocker")
        try:
            q, stuck = self.boot(vm, disk.serial, "i apt-based guest")
            facts = probe(vm, disk.serial, vm.workdir, "i")
            rc, out, _ = vm.sh("cat /var/log/twin-nodocker.log")
            check("docker.io removed" in out, f"the twin did not remove docker.io before boot: {out[-200:]}")
            fails = [l.strip() for l in facts["bootstrap_log"] if "not found" in l or "FAILED" in l or "E:" in l]
            check(facts["docker_io_status"].endswith("installed") and "not-installed" not in facts["docker_io_status"],
                  f"Docker was not installed by dify-bootstrap (dpkg: {facts['docker_io_status'] or 'absent'}"
                  + (f"; bootstrap: {' | '.join(fails[-2:])[:300]}" if fails else "") + ")")
            assert_serving(facts, disk.volume_id)
            report("i", True)
        except Failed as e:
            report("i", False, str(e))
        finally:
            vm.shutdown()

    def scenario_j(self):
        # A stack without a data volume: Dify's data is on the root disk. Then a volume is added (the provider stops
        # the instance, attaches the volume, tags it, starts the instance). The data must be moved to it or the boot
        # refused: never a fresh Dify on the new volume with the old data hidden underneath.
        vm = self.vm("j", None, tags={"Name": "j", "dify:managed-by": "terraform-provider-dify"})
        disk = None
        try:
            q, stuck = self.boot(vm, "", "j volumeless first boot")
            before = probe(vm, "", vm.workdir, "j-volumeless")
            check(before["containers"] and before["ping"] == "200" and before.get("secrets"),
                  f"the volumeless stack did not come up (containers {running_services(before)}, ping {before['ping']}, "
                  f"bootstrap: {' | '.join(before['bootstrap_log'][-2:])[:300]})")
            old = {"secrets": before["secrets"]["sha256"], "db": before["db_cluster"]}
            vm.shutdown()
            disk = self.disk("vol-j")
            vm.data = disk
            vm.attach_data = True
            vm.set_metadata({**vm.tags, "dify:data-volume": disk.volume_id})
            q, stuck = self.boot(vm, disk.serial, "j start with the volume added")
            facts = probe(vm, disk.serial, vm.workdir, "j-volume")
            if facts["mount"]:
                hidden = [what for what, same in (("secrets", (facts.get("secrets") or {}).get("sha256") == old["secrets"]),
                                                  ("database", facts["db_cluster"] == old["db"])) if not same]
                check(not hidden, f"the volume was mounted over the root disk's {DATA} and Dify started afresh: "
                                  f"its {' and '.join(hidden)} are new, the old ones hidden underneath")
                assert_serving(facts, disk.volume_id)
            else:
                check(facts["dify"] == "failed", f"{DATA} not mounted and dify.service is {facts['dify']}"
                      + (f" ({stuck})" if stuck else "") + "; " + why_not_mounted(facts, disk.volume_id))
                check(not any("did not appear" in l for l in facts["bootstrap_log"]),
                      "dify-bootstrap failed because it did not find the volume, not because the root disk holds data: "
                      + why_not_mounted(facts, disk.volume_id))
                assert_not_started(facts, "the boot was refused")
            report("j", True)
        except Failed as e:
            report("j", False, str(e))
        finally:
            vm.shutdown()

    def scenario_k(self):
        # Two instances of one multi-instance stack, each with its own blank data volume, and the stack's shared secret
        # as the provider creates it (SecretString "{}"). Index 1 boots first: it must wait, never write; index 0 fills
        # the secret; both then serve Dify with the same secrets, so a session made on one is valid on the other.
        store = os.path.join(self.work, "secretsmanager-k.json")
        with open(store, "w") as f:
            json.dump({SHARED_SECRET: {"SecretString": "{}"}}, f)
        user_data = os.path.abspath(self.args.shared_user_data)
        vms = []
        for index in (1, 0):
            disk = self.disk(f"vol-k{index}")
            tags = {"Name": f"k{index}", "dify:managed-by": "terraform-provider-dify", "dify:data-volume": disk.volume_id,
                    "dify:index": str(index)}
            # Under TCG a boot is several times slower than on EC2 (index 0 took 23 minutes to fill the secret on a
            # busy machine): index 1 gets a longer wait than the 900 s default, through systemd's environment.
            vms.append((self.vm(f"k{index}", disk, user_data=user_data, tags=tags, secretsmanager=store,
                                append=f"systemd.setenv=DIFY_SHARED_SECRETS_WAIT_SECONDS={BOOT_TIMEOUT * 2}"), disk))
        (vm1, disk1), (vm0, disk0) = vms
        try:
            vm1.start()
            log("k1: started (index 1, before index 0)")
            vm1.wait_agent(300)
            deadline = time.time() + 900
            while "waiting for instance 0 to fill" not in vm1.console_text():
                failed = [l for l in vm1.console_text().splitlines() if "dify-bootstrap: FAILED" in l]
                if failed or time.time() > deadline or not vm1.running():
                    raise Failed(f"index 1 never said it waits for instance 0: {failed[-1:] or 'no such console line'}")
                time.sleep(5)
            log("k1: waits for instance 0")
            calls = open(store + ".log").read().splitlines()
            check(not any("PutSecretValue" in c for c in calls), f"index 1 wrote the shared secret: {calls}")
            check(json.load(open(store))[SHARED_SECRET]["SecretString"] == "{}", "the secret changed before index 0 booted")
            t = time.time()
            q, stuck0 = self.boot(vm0, disk0.serial, "k index 0")
            q, stuck1 = settle(vm1, disk1.serial, timeout=BOOT_TIMEOUT + int(t - vm1.started))
            self.timing("k index 1 settled after index 0 started", time.time() - t)
            facts = [probe(vm, disk.serial, vm.workdir, f"k{i}") for i, (vm, disk) in ((1, vms[0]), (0, vms[1]))]
            for (vm, disk), f, stuck in zip(vms, facts, (stuck1, stuck0)):
                try:
                    assert_serving(f, disk.volume_id)
                except Failed as e:
                    raise Failed(f"{vm.name}: {e}" + (f" ({stuck})" if stuck else ""))
            hashes = [f.get("dotenv_secret_sha256", {}) for f in facts]
            for key in SHARED_KEYS:
                check(hashes[0].get(key) and hashes[0].get(key) == hashes[1].get(key),
                      f"{key} differs between the instances' .env (sha256 {hashes[0].get(key)} vs {hashes[1].get(key)})")
            writes = [c for c in open(store + ".log").read().splitlines() if "PutSecretValue" in c]
            check(len(writes) == 1, f"the shared secret was written {len(writes)} times, not once (by index 0): {writes}")
            shared = json.loads(json.load(open(store))[SHARED_SECRET]["SecretString"])
            check(set(SHARED_KEYS) <= set(shared), f"the shared secret lacks {sorted(set(SHARED_KEYS) - set(shared))}")
            consoles = vm0.console_text() + vm1.console_text()
            leaked = [k for k, v in shared.items() if v and v in consoles]
            check(not leaked, f"the console shows the value of {leaked}")
            check(all(f["twin_aws"] and all("--region ap-northeast-1" in l for l in f["twin_aws"]) for f in facts),
                  f"an aws call without the instance's region: {[f['twin_aws'] for f in facts]}")
            report("k", True)
        except Failed as e:
            report("k", False, str(e))
        finally:
            vm0.shutdown()
            vm1.shutdown()

    def scenario_l(self):
        # issue 17's pre-warmed replacement: the new instance is launched with the volume's tag while the old one
        # serves; it installs what it needs, fetches the release and pulls every image, prints the marker and waits
        # for the volume. Only then is the old one stopped and the volume moved; what is left is mount, secrets, up.
        disk = self.disk("vol-l")
        old = self.vm("l-old", disk, append=switch.pull_append())
        new = self.vm("l-new", disk, attach_data=False, append=switch.pull_append())
        version = switch.version_of(self.user_data)
        try:
            old.start()
            new.start()
            watch = switch.ConsoleWatch(new)
            log("l: old and new VMs started (the new one without the data volume)")
            old.wait_agent(300)
            q, stuck = settle(old, disk.serial)
            self.timing("l old VM first boot, settled", time.time() - old.started)
            before = probe(old, disk.serial, old.workdir, "l-old")
            assert_serving(before, disk.volume_id)
            check(not stuck, stuck)
            try:
                watch.wait("prepared", BOOT_TIMEOUT - (time.time() - new.started))
            except RuntimeError as e:
                raise Failed(f"the new VM never printed its marker: {e}")
            self.timing("l new VM prepared (marker)", watch.at("prepared") - new.started)
            check(watch.seen["prepared"][1].endswith(f"DIFY-PREPARED {version}"), f"marker line {watch.seen['prepared'][1]!r} does not name {version}")
            new.wait_agent(300)
            time.sleep(10)  # a Dify that (wrongly) went on without its volume would be starting by now
            waiting = quick(new, disk.serial)
            pulls = new.sh("cat /var/log/twin-pull.log")[1]
            running = new.sh("docker ps -q")[1].split()
            check(waiting["dify"] == "activating" and not waiting["mount"],
                  f"after its marker, without the volume, the new VM's dify.service is {waiting['dify']} (mount {waiting['mount']}): it did not wait")
            check(not running, f"the new VM runs {len(running)} containers before it has its data volume")
            check(len(pulls.splitlines()) >= 5, f"the new VM pulled {len(pulls.splitlines())} images before its marker: {pulls[-300:]}")

            t0 = time.time()
            clean = old.shutdown(timeout=switch.STOP_TIMEOUT)
            stopped = time.time()
            check(clean, f"the old VM did not power off cleanly (killed after {switch.STOP_TIMEOUT} s)")
            new.hotplug_data()
            try:
                served = switch.wait_ping(new, BOOT_TIMEOUT, watch)
            except RuntimeError as e:
                raise Failed(f"after the volume moved: {e}")
            self.timing(f"l downtime {served - t0:.0f}s: old VM stop {stopped - t0:.0f}s, hot-plug to ping {served - stopped:.0f}s", served - t0)
            q, stuck = settle(new, disk.serial, timeout=time.time() - new.started + 600)
            after = probe(new, disk.serial, new.workdir, "l-new")
            assert_serving(after, disk.volume_id)
            assert_ordering(after)
            check(not stuck, stuck)
            check(after["db_cluster"] == before["db_cluster"], f"database cluster {before['db_cluster']} -> {after['db_cluster']}: not the old VM's data")
            check((after.get("secrets") or {}).get("sha256") == before["secrets"]["sha256"], "the new VM made new secrets")
            check(after["mount"]["uuid"] == before["mount"]["uuid"], "filesystem UUID changed: the volume was reformatted")
            pulls_after = new.sh("cat /var/log/twin-pull.log")[1]
            check(pulls_after == pulls, f"the new VM pulled during the downtime: {pulls_after[len(pulls):][-300:]}")
            console = watch.poll()
            order = [console.find(switch.PREPARED), console.find("for data volume"), console.find(f"Dify {version} started")]
            check(-1 not in order and order == sorted(order), f"console order (marker, volume wait, started) is {order}")
            report("l", True)
        except Failed as e:
            report("l", False, str(e))
        finally:
            new.shutdown()
            old.shutdown()

    def scenario_m(self):
        # size_gb raised while the instance runs (EBS ModifyVolume): the kernel reports the volume's new size with a
        # block "change" event (RESIZE=1), the user data's udev rule starts dify-grow.service, and the mounted
        # filesystem grows with nothing restarted. QEMU 7.2's NVMe refuses to grow an attached drive and virtio does
        # not, so this is the Xen-style instance (t2, m4): the volume is /dev/sdf, here a virtio disk the guest's
        # udev also names sdf.
        disk = self.disk("vol-m", size="2G")
        vm = self.vm("m", disk, attach_data=False)

        def size_kib():
            rc, out, err = vm.sh("df -P -k /opt/dify-data | awk 'NR == 2 { print $2 }'")
            check(rc == 0 and out.strip().isdigit(), f"df /opt/dify-data: {err[-300:]}")
            return int(out.strip())

        try:
            vm.start()
            vm.wait_agent(300)
            rule = f'KERNEL=="vd*[!0-9]", ATTRS{{serial}}=="{disk.serial}", SYMLINK+="sdf"'
            rc, _, err = vm.sh(f"echo '{rule}' >/etc/udev/rules.d/60-twin-xen-name.rules && udevadm control --reload")
            check(rc == 0, f"writing the twin's sdf rule: {err[-300:]}")
            vm.hotplug_data(bus="virtio")
            q, stuck = settle(vm, "")
            self.timing("m first boot (virtio volume as sdf), settled", time.time() - vm.started)
            check(not stuck, stuck)
            check(q["dify"] == "active", f"dify.service is {q['dify']} (see {vm.workdir}/console.log)")
            rc, dev, _ = vm.sh("readlink -f /dev/sdf")
            check(rc == 0 and dev.strip().startswith("/dev/vd") and q["mount"] == dev.strip(), f"/opt/dify-data is mounted from {q['mount']}, not the volume ({dev.strip()})")
            before = size_kib()
            grown_at = time.time()
            vm.resize_data("4G")
            after = before
            while time.time() < grown_at + 180:
                after = size_kib()
                if after > before * 3 // 2:
                    break
                time.sleep(5)
            self.timing("m online growth, filesystem grown", time.time() - grown_at)
            rc, journal, _ = vm.sh("journalctl -b 0 -u dify-grow.service --no-pager -o cat")
            check(after > before * 3 // 2, f"the filesystem stayed at {before} KiB for 180 s after the volume grew to 4 GiB; dify-grow.service's journal: {journal[-600:]}")
            check("Finished dify-grow.service" in journal, f"dify-grow.service did not run: {journal[-600:]}")
            rc, grew, _ = vm.sh("grep 'grew from' /var/log/dify-bootstrap.log")
            check(rc == 0 and "/dev/vd" in grew, f"dify-bootstrap grow did not report the growth in its log: {grew[-300:]}")
            q2 = quick(vm, "")
            check(q2["boot_id"] == q["boot_id"] and q2["dify"] == "active", f"the growth restarted something: boot {q2['boot_id']} (was {q['boot_id']}), dify.service {q2['dify']}")
            log(f"m: {before} KiB -> {after} KiB online")
            report("m", True)
        except Failed as e:
            report("m", False, str(e))
        finally:
            vm.shutdown()


def run_job(runner, job, want):
    keys = {"abfc": "abfc", "d": "d", "e": "e", "g": "g", "h": "h", "i": "i", "j": "j", "k": "k", "l": "l", "m": "m"}[job]
    try:
        if job == "abfc":
            runner.chain_abfc(want)
        else:
            getattr(runner, f"scenario_{job}")()
    except Exception as e:
        log(traceback.format_exc())
        for k in keys:
            if k in want and k not in results:
                report(k, False, f"twin error: {type(e).__name__}: {str(e)[:300]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--user-data", default=os.path.join(ROOT, "tests/golden/user-data-default.yaml"))
    p.add_argument("--release", default=os.path.join(ROOT, "tests/contract/dify-1.13.3"),
                   help="the release directory `git clone` yields in the guest (its docker/ is the compose fixture)")
    p.add_argument("--shared-user-data", default=os.path.join(ROOT, "tests/golden/user-data-shared-secrets.yaml"),
                   help="scenario k: the user data of an instance of a multi-instance stack (DIFY_SHARED_SECRETS)")
    p.add_argument("--only", default="abcdefghijklm", help="scenario letters, e.g. abc")
    p.add_argument("--jobs", type=int, default=2, help="VMs at once")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--memory", type=int, default=1536)
    p.add_argument("--workdir", default=None)
    p.add_argument("--keep", action="store_true", help="keep the work directory even when everything passed")
    args = p.parse_args()
    twin.install_signal_handlers()
    want = set(args.only.replace(",", ""))
    if want & set("bcf"):
        want.add("a")  # they continue a's instance and volume
    if not os.path.isdir(os.path.join(args.release, "docker")):
        print(f"FAIL setup: no release fixture at {args.release}/docker\n0 passed, 1 failed")
        sys.exit(1)
    t0 = time.time()
    runner = Runner(args)
    log(f"image {runner.image}; work {runner.work}; user data {runner.user_data}; release {runner.release}")
    # Longest first (a's chain, the two-VM scenarios, the apt guest that installs Docker), the short e last: the two
    # lanes then end close together.
    jobs = [j for j in ["abfc", "k", "l", "i", "d", "j", "g", "h", "m", "e"] if set(j) & want]
    queue = list(jobs)
    qlock = threading.Lock()

    def worker():
        while True:
            with qlock:
                if not queue:
                    return
                job = queue.pop(0)
            run_job(runner, job, want)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    twin._kill_all()
    runner.timing("all scenarios", time.time() - t0)
    with open(os.path.join(runner.work, "timings.txt"), "w") as f:
        for what, s in runner.timings:
            f.write(f"{s:7.0f}s  {what}\n")
    passed = sum(1 for k in want if results.get(k, (False,))[0])
    failed = len(want) - passed
    for k in sorted(want):
        if k not in results:
            report(k, False, "not run")
    if failed == 0 and not args.keep and not args.workdir:
        shutil.rmtree(runner.work, ignore_errors=True)
    else:
        log(f"logs kept in {runner.work}")
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
