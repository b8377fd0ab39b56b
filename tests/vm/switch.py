"""Moving a data volume from a serving VM to another one, timed: what scenario l and bench/vm_downtime.py share.

The downtime is measured from the moment the old VM's stop begins (on EC2: its target already deregistered and
drained, StopInstances called) to the first 200 from the new VM's `/console/api/ping`, polled in the guest once a
second. Console lines are timestamped on the host as they appear on the serial console (EC2's console output).
"""

import os
import re
import threading
import time

PREPARED = "dify-bootstrap: DIFY-PREPARED"
STARTED = re.compile(r"dify-bootstrap: Dify \S+ started")
FAILED = "dify-bootstrap: FAILED"
# A clean power-off stops a dozen containers under TCG (dify.service's `compose stop`, then Docker): more than
# twin.py's default 120 s on a busy machine; EC2 gives a stopping instance a similar grace.
STOP_TIMEOUT = 300


def pull_seconds():
    """The simulated pull of one image (tests/vm/share/docker), from DIFY_TWIN_PULL_SECONDS (default 3)."""
    return int(os.environ.get("DIFY_TWIN_PULL_SECONDS", "3"))


def pull_append(seconds=None):
    """The kernel command line word that sets the simulated pull time per image in a VM."""
    return f"twin.pull_seconds={pull_seconds() if seconds is None else seconds}"


def version_of(user_data):
    m = re.search(r"DIFY_VERSION='([^']+)'", open(user_data).read())
    return m.group(1) if m else None


class ConsoleWatch:
    """The host time each wanted console line first appeared: the console is read every half second, in a thread of
    its own, so a line is timed when it appears, not when someone next looks."""

    def __init__(self, vm):
        self.vm = vm
        self.seen = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        while self.vm.proc is None or self.vm.running():
            self.poll()
            time.sleep(0.5)

    def poll(self):
        with self.lock:
            text = self.vm.console_text()
            now = time.time()
            for line in text.splitlines():
                for key, match in (("prepared", lambda l: PREPARED in l), ("started", lambda l: STARTED.search(l)),
                                   ("failed", lambda l: FAILED in l), ("waiting", lambda l: "for data volume" in l and "waiting up to" in l)):
                    if key not in self.seen and match(line):
                        self.seen[key] = (now, line.strip())
            return text

    def wait(self, key, timeout):
        """Waits for a line of `key`; returns its host time. Raises RuntimeError on a FAILED line or a timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            if key in self.seen:
                return self.seen[key][0]
            if "failed" in self.seen:
                raise RuntimeError(f"{self.vm.name}: {self.seen['failed'][1][-300:]}")
            if not self.vm.running():
                raise RuntimeError(f"{self.vm.name}: qemu exited")
            time.sleep(0.5)
        raise RuntimeError(f"{self.vm.name}: no '{key}' line on the console within {timeout}s")

    def at(self, key):
        return self.seen.get(key, (None,))[0]


def ping(vm):
    """The HTTP status of GET /console/api/ping inside the guest ('' when nothing answers)."""
    try:
        rc, out, _ = vm.sh("curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:80/console/api/ping", timeout=30)
    except Exception:
        return ""
    return out.strip()


def wait_ping(vm, timeout, watch=None):
    """Polls the guest's ping once a second until it answers 200; returns the host time it did."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if watch:
            watch.poll()
            if "failed" in watch.seen:
                raise RuntimeError(f"{vm.name}: {watch.seen['failed'][1][-300:]}")
        if ping(vm) == "200":
            return time.time()
        if not vm.running():
            raise RuntimeError(f"{vm.name}: qemu exited")
        time.sleep(1)
    raise RuntimeError(f"{vm.name}: /console/api/ping did not answer 200 within {timeout}s")
