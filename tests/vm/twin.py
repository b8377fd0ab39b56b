#!/usr/bin/env python3
"""The VM twin's launcher: a real Linux machine (QEMU, TCG) that boots exactly the user data the provider renders.

A VM here has:
  - a qcow2 overlay over the cached base image (tests/vm/build-image.sh), so the base is never modified;
  - a NoCloud seed (iso9660 labelled cidata) whose user-data is the given file, byte for byte;
  - the Dify data volume as an NVMe disk whose serial is the volume id without its dash (as on Nitro), backed by a
    raw file the caller owns (it outlives VMs; it can be grown, and hot-plugged after boot);
  - the IMDSv2 twin (imds.py) at 169.254.169.254, answering from a JSON file per VM;
  - optionally the Secrets Manager twin (secretsmanager.py) at 169.254.169.254:4566, one store per stack;
  - two read-only 9p shares: tests/vm/share (stand-ins, at /mnt/twin) and the Dify release fixture (/mnt/twin-release);
  - a QMP socket (hot-plug, block_resize, powerdown), the guest agent over virtio-serial (commands and their output),
    and the serial console logged to console.log.
QEMU's user network is `restrict=on`: the guest reaches nothing but the IMDS (and Secrets Manager) twins.

Used as a library by scenarios.py; `python3 twin.py boot USER_DATA` boots one VM by hand and prints where it lives.
"""

import atexit
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARE = os.path.join(HERE, "share")

_live = set()
_live_lock = threading.Lock()


def _kill_all(*_):
    with _live_lock:
        vms = list(_live)
    for vm in vms:
        vm.kill()


atexit.register(_kill_all)


def _on_signal(signum, _frame):
    _kill_all()
    sys.exit(128 + signum)


def install_signal_handlers():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)


def image_dir():
    """The cached base image's directory, built first when missing (one time: a few minutes)."""
    out = subprocess.run(["bash", os.path.join(HERE, "build-image.sh")], stdout=subprocess.PIPE, check=True, text=True)
    return out.stdout.strip().splitlines()[-1]


class DataDisk:
    """A raw file standing for one EBS volume. Its NVMe serial is the volume id without its dash."""

    def __init__(self, path, volume_id=None, size="4G"):
        self.path = path
        self.volume_id = volume_id or "vol-0" + uuid.uuid4().hex[:16]
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.truncate(parse_size(size))

    @property
    def serial(self):
        return self.volume_id.replace("-", "")

    def size(self):
        return os.path.getsize(self.path)


def parse_size(s):
    if isinstance(s, int):
        return s
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


class QmpError(Exception):
    pass


class VM:
    def __init__(self, workdir, image, user_data, release_dir, instance_id=None, data=None, attach_data=True,
                 tags=None, smp=1, memory_mb=1536, append="", name="twin", secretsmanager=None):
        self.workdir = workdir
        self.image = image
        self.user_data = user_data
        self.release_dir = os.path.abspath(release_dir)
        self.instance_id = instance_id or "i-0" + uuid.uuid4().hex[:16]
        self.data = data
        self.attach_data = attach_data
        self.smp = smp
        self.memory_mb = memory_mb
        self.append = append
        self.name = name
        # The Secrets Manager twin's store (secretsmanager.py), shared by the VMs of one stack; None: not reachable.
        self.secretsmanager = secretsmanager
        self.proc = None
        self.started = None
        os.makedirs(workdir, exist_ok=True)
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.qga_path = os.path.join(workdir, "qga.sock")
        self.console = os.path.join(workdir, "console.log")
        self.imds_state = os.path.join(workdir, "imds.json")
        default_tags = {"Name": name, "dify:managed-by": "terraform-provider-dify"}
        if data is not None:
            default_tags["dify:data-volume"] = data.volume_id
        self.set_metadata(tags if tags is not None else default_tags)

    # --- the instance's metadata (IMDS twin) -------------------------------------------------------------------
    def set_metadata(self, tags, instance_id=None):
        if instance_id:
            self.instance_id = instance_id
        self.tags = dict(tags)
        tmp = self.imds_state + ".new"
        with open(tmp, "w") as f:
            json.dump({"instance-id": self.instance_id, "availability-zone": "ap-northeast-1a", "tags": self.tags}, f)
        os.replace(tmp, self.imds_state)

    def imds_requests(self):
        try:
            return open(self.imds_state + ".log").read().splitlines()
        except FileNotFoundError:
            return []

    # --- start and stop -----------------------------------------------------------------------------------------
    def _seed(self):
        seed_dir = os.path.join(self.workdir, "seed")
        shutil.rmtree(seed_dir, ignore_errors=True)
        os.makedirs(seed_dir)
        shutil.copyfile(self.user_data, os.path.join(seed_dir, "user-data"))
        with open(os.path.join(seed_dir, "meta-data"), "w") as f:
            f.write(f"instance-id: {self.instance_id}\nlocal-hostname: {self.name}\n")
        iso = os.path.join(self.workdir, "seed.iso")
        subprocess.run(["genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
                        os.path.join(seed_dir, "user-data"), os.path.join(seed_dir, "meta-data")], check=True)
        return iso

    def root_disk(self):
        return os.path.join(self.workdir, "root.qcow2")

    def start(self):
        """Boots the VM. A root overlay already in workdir is kept (the same instance, started again)."""
        if not os.path.exists(self.root_disk()):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.join(self.image, "rootfs.raw"),
                            "-F", "raw", self.root_disk()], check=True)
        seed = self._seed()
        for p in (self.qmp_path, self.qga_path):
            if os.path.exists(p):
                os.unlink(p)
        imds = f"python3 {os.path.join(HERE, 'imds.py')} {self.imds_state}"
        forwards = f"guestfwd=tcp:169.254.169.254:80-cmd:{imds}"
        if self.secretsmanager:
            forwards += f",guestfwd=tcp:169.254.169.254:4566-cmd:python3 {os.path.join(HERE, 'secretsmanager.py')} {self.secretsmanager}"
        # tsc=reliable: under TCG the clocksource watchdog sees the HPET read back late on a busy host, marks the TSC
        # unstable and switches to the HPET, after which every clock read (Go's runtime makes them constantly:
        # dockerd, containerd, every shim and hook) is an emulated MMIO exit; a first boot took 1508 s with it, 974 s without.
        append = f"root=/dev/vda rw console=ttyS0 apparmor=0 mitigations=off tsc=reliable systemd.show_status=1 {self.append}".strip()
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-cpu", os.environ.get("DIFY_VM_CPU", "qemu64"), "-smp", str(self.smp),
            "-m", str(self.memory_mb), "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", os.path.join(self.image, "vmlinuz"), "-initrd", os.path.join(self.image, "initrd.img"),
            "-append", append,
            "-drive", f"if=none,id=root,file={self.root_disk()},format=qcow2,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"if=none,id=seed,file={seed},format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=seed",
            "-netdev", f"user,id=n0,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=n0",
            "-virtfs", f"local,path={SHARE},mount_tag=twin,security_model=none,readonly=on,id=twin",
            "-virtfs", f"local,path={self.release_dir},mount_tag=release,security_model=none,readonly=on,id=release",
            "-chardev", f"socket,id=qga0,path={self.qga_path},server=on,wait=off",
            "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-chardev", f"file,id=ser0,path={self.console},append=on", "-serial", "chardev:ser0",
        ]
        if self.data is not None and self.attach_data:
            cmd += ["-blockdev", self._data_blockdev_arg(), "-device", self._nvme_device_arg()]
        with open(os.path.join(self.workdir, "qemu.cmdline"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        log = open(os.path.join(self.workdir, "qemu.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.started = time.time()
        with _live_lock:
            _live.add(self)
        deadline = time.time() + 30
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"qemu exited at start: {open(os.path.join(self.workdir, 'qemu.log')).read()[-2000:]}")
            if time.time() > deadline:
                raise RuntimeError("qemu made no QMP socket in 30s")
            time.sleep(0.2)
        return self

    def _data_blockdev_arg(self):
        return json.dumps({"driver": "raw", "node-name": "data0",
                           "file": {"driver": "file", "filename": os.path.abspath(self.data.path)}})

    def _nvme_device_arg(self):
        return f"nvme,id=datactl,serial={self.data.serial},drive=data0"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def shutdown(self, timeout=120):
        """Clean power-off (ACPI), then QEMU quits; killed after timeout. Returns True when it was clean."""
        if not self.running():
            return True
        clean = False
        try:
            self.qmp("system_powerdown")
            self.proc.wait(timeout=timeout)
            clean = True
        except Exception:
            pass
        self.kill()
        return clean

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        with _live_lock:
            _live.discard(self)

    # --- QMP ------------------------------------------------------------------------------------------------------
    def qmp(self, command, **arguments):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.qmp_path)
        f = s.makefile("rwb")
        try:
            f.readline()  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "event" in reply:
                        continue
                    break
                if "error" in reply:
                    raise QmpError(f"{command}: {reply['error']}")
            return reply.get("return")
        finally:
            f.close()
            s.close()

    def hotplug_data(self, bus="nvme"):
        """Attaches the data volume now (as EC2 attach-volume does to a running instance): an NVMe controller, as on
        Nitro, or bus="virtio" for a disk QEMU can grow while attached (the guest names it vdb)."""
        self.qmp("blockdev-add", **json.loads(self._data_blockdev_arg()))
        driver = "nvme" if bus == "nvme" else "virtio-blk-pci"
        self.qmp("device_add", driver=driver, id="datactl", serial=self.data.serial, drive="data0")
        self.attach_data = True

    def resize_data(self, new_size):
        """Grows the data volume: the running VM's view of it (QMP block_resize), or the file (truncate) while the VM
        is off. QEMU 7.2's NVMe device does not share the 'resize' permission of its drive, so a running VM refuses
        block_resize there: grow it stopped (a stop/start, which the guest sees as a reboot)."""
        size = parse_size(new_size)
        if self.running() and self.attach_data:
            self.qmp("block_resize", **{"node-name": "data0", "size": size})
        else:
            with open(self.data.path, "r+b") as f:
                f.truncate(size)

    # --- the guest agent ------------------------------------------------------------------------------------------
    def _qga(self, requests, timeout):
        """Sends guest agent requests on one connection; returns their replies. Raises on timeout."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.qga_path)
        f = s.makefile("rwb")
        try:
            sync_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
            f.write(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}).encode() + b"\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise TimeoutError("guest agent closed")
                line = line.lstrip(b"\xff").strip()
                if not line:
                    continue
                try:
                    if json.loads(line).get("return") == sync_id:
                        break
                except ValueError:
                    continue
            replies = []
            for req in requests:
                f.write(json.dumps(req).encode() + b"\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        raise TimeoutError("guest agent closed")
                    line = line.strip()
                    if line:
                        break
                replies.append(json.loads(line))
            return replies
        finally:
            f.close()
            s.close()

    def agent_ok(self, timeout=3):
        try:
            return self._qga([{"execute": "guest-ping"}], timeout)[0].get("return") == {}
        except (OSError, TimeoutError, ValueError):
            return False

    def wait_agent(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.running():
                raise RuntimeError("qemu exited")
            if self.agent_ok():
                return time.time() - self.started
            time.sleep(2)
        raise TimeoutError(f"guest agent did not answer within {timeout}s")

    def sh(self, command, timeout=120, input_text=None):
        """Runs `sh -c command` in the guest as root; returns (exit code, stdout, stderr)."""
        args = {"path": "/bin/sh", "arg": ["-c", command], "capture-output": True}
        if input_text is not None:
            args["input-data"] = base64.b64encode(input_text.encode()).decode()
        reply = self._qga([{"execute": "guest-exec", "arguments": args}], 30)[0]
        if "error" in reply:
            raise RuntimeError(f"guest-exec: {reply['error']}")
        pid = reply["return"]["pid"]
        deadline = time.time() + timeout
        while True:
            status = self._qga([{"execute": "guest-exec-status", "arguments": {"pid": pid}}], 30)[0]["return"]
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(status.get("err-data", "")).decode(errors="replace")
                return status.get("exitcode", -1), out, err
            if time.time() > deadline:
                raise TimeoutError(f"guest command still running after {timeout}s: {command[:80]}")
            time.sleep(0.5)

    def boot_id(self):
        return self.sh("cat /proc/sys/kernel/random/boot_id")[1].strip()

    def reboot(self, timeout=300):
        """A clean reboot from inside the guest (systemctl reboot); returns when the agent answers in the new boot."""
        old = self.boot_id()
        self._qga([{"execute": "guest-exec", "arguments": {"path": "/bin/systemctl", "arg": ["reboot"]}}], 30)
        t0 = time.time()
        deadline = t0 + timeout
        while time.time() < deadline:
            time.sleep(3)
            if self.agent_ok():
                try:
                    if self.boot_id() not in ("", old):
                        return time.time() - t0
                except (OSError, TimeoutError, RuntimeError, KeyError):
                    pass
        raise TimeoutError(f"no new boot within {timeout}s")

    def console_text(self):
        try:
            return open(self.console, errors="replace").read()
        except FileNotFoundError:
            return ""


def main():
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("image", help="build the base image when missing; print its directory")
    b = sub.add_parser("boot", help="boot one VM with a blank data volume and wait for its agent; Ctrl-C stops it")
    b.add_argument("user_data", nargs="?", default=os.path.join(ROOT, "tests/golden/user-data-default.yaml"))
    b.add_argument("--release", default=os.path.join(ROOT, "tests/contract/dify-1.13.3"))
    b.add_argument("--workdir", default="/tmp/dify-twin-manual")
    a = p.parse_args()
    install_signal_handlers()
    if a.cmd == "image":
        print(image_dir())
        return
    img = image_dir()
    os.makedirs(a.workdir, exist_ok=True)
    disk = DataDisk(os.path.join(a.workdir, "data.raw"))
    vm = VM(a.workdir, img, a.user_data, a.release, data=disk).start()
    print(f"workdir {a.workdir}; console {vm.console}; agent after {vm.wait_agent():.0f}s", flush=True)
    try:
        while vm.running():
            time.sleep(5)
    finally:
        vm.shutdown()


if __name__ == "__main__":
    main()
