#!/usr/bin/env python3
"""Upgrade downtime in the VM twin (issue 17 item 5): how long Dify is unreachable while its data volume moves from
the serving VM to a new one, in today's order and in the pre-warmed order, with image pulls simulated as a fixed
delay per image (tests/vm/share/docker), so "pulled before" and "pulled during" compare fairly.

    python3 bench/vm_downtime.py [--user-data F] [--release DIR] [--pull-seconds 10] [--out target/bench/downtime.md]

Three VMs, one volume:
  1. "old" boots with the volume and serves; at the same time "prewarmed" boots WITHOUT it and prints its marker.
  2. (b) pre-warmed order: old powers off cleanly, the volume is hot-plugged into "prewarmed", which mounts it and
     starts Dify. Downtime: from the old VM's stop beginning to the first 200 from /console/api/ping on the new one.
  3. (a) today's order: "prewarmed" (now serving) powers off, and "today" boots with the volume attached: the whole
     boot (Docker, the release, every pull, the volume, up) is downtime.
  (c) the seed HCL module's recreate is estimated from (a)'s steps; see the table's notes.
Writes a Markdown table (bench/report.py puts it into docs/benchmarks.md). A VM that fails any step fails the run.
"""

import argparse
import datetime
import os
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/vm"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import report  # noqa: E402
import scenarios  # noqa: E402
import switch  # noqa: E402
import twin  # noqa: E402


def log(msg):
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def serving(runner, vm, disk, label, settle_timeout):
    q, stuck = scenarios.settle(vm, disk.serial, timeout=settle_timeout)
    facts = scenarios.probe(vm, disk.serial, vm.workdir, label)
    scenarios.assert_serving(facts, disk.volume_id)
    if stuck:
        raise scenarios.Failed(stuck)
    return facts


def measure(args):
    os.environ["DIFY_TWIN_PULL_SECONDS"] = str(args.pull_seconds)
    runner = scenarios.Runner(types.SimpleNamespace(workdir=args.workdir, user_data=args.user_data, release=args.release, smp=1, memory=1536))
    log(f"work {runner.work}; pull {args.pull_seconds}s per image")
    append = switch.pull_append()
    disk = runner.disk("vol-bench")
    # The old VM's own pulls are not timed: none, so the run is shorter.
    old = runner.vm("old", disk, append=switch.pull_append(0))
    pre = runner.vm("prewarmed", disk, attach_data=False, append=append)
    today = runner.vm("today", disk, append=append)
    r = {}
    try:
        old.start()
        pre.start()
        pre_watch = switch.ConsoleWatch(pre)
        old.wait_agent(300)
        before = serving(runner, old, disk, "old", scenarios.BOOT_TIMEOUT)
        log(f"old serving after {time.time() - old.started:.0f}s")
        pre_watch.wait("prepared", scenarios.BOOT_TIMEOUT)
        r["b_prepare"] = pre_watch.at("prepared") - pre.started
        pre.wait_agent(300)
        log(f"prewarmed: marker after {r['b_prepare']:.0f}s")

        # (b) the pre-warmed order.
        t0 = time.time()
        scenarios.check(old.shutdown(timeout=switch.STOP_TIMEOUT), "old did not power off cleanly")
        r["b_stop"] = time.time() - t0
        pre.hotplug_data()
        plugged = time.time()
        served = switch.wait_ping(pre, scenarios.BOOT_TIMEOUT, pre_watch)
        r["b_up"] = served - plugged
        r["b_total"] = served - t0
        log(f"(b) downtime {r['b_total']:.0f}s")
        after = serving(runner, pre, disk, "prewarmed", time.time() - pre.started + 600)
        scenarios.check(after["db_cluster"] == before["db_cluster"], "the pre-warmed VM does not serve the old VM's database")

        # (a) today's order: stop, then a new VM boots with the volume and does everything.
        t0 = time.time()
        scenarios.check(pre.shutdown(timeout=switch.STOP_TIMEOUT), "prewarmed did not power off cleanly")
        r["a_stop"] = time.time() - t0
        today.start()
        watch = switch.ConsoleWatch(today)
        r["a_agent"] = today.wait_agent(600)
        watch.wait("prepared", scenarios.BOOT_TIMEOUT)
        r["a_prepare"] = watch.at("prepared") - today.started
        served = switch.wait_ping(today, scenarios.BOOT_TIMEOUT, watch)
        r["a_up"] = served - watch.at("prepared")
        r["a_total"] = served - t0
        log(f"(a) downtime {r['a_total']:.0f}s")
        after = serving(runner, today, disk, "today", time.time() - today.started + 600)
        scenarios.check(after["db_cluster"] == before["db_cluster"], "today's replacement does not serve the old VM's database")
        images = len(today.sh("cat /var/log/twin-pull.log")[1].splitlines())
        r["images"] = images
    finally:
        for vm in (today, pre, old):
            vm.shutdown()
        twin._kill_all()
    return r


def table(r, pull_seconds):
    c_total = r["a_total"] + r["a_agent"]
    pulls = f"{r['images']} images × {pull_seconds} s = {r['images'] * pull_seconds} s"
    rows = [
        ("(a) today's order: stop the old instance, then a new one boots with the volume",
         f"{r['a_total']:.0f} s", f"stop {r['a_stop']:.0f} s + power-on to marker (OS, Docker, release, pulls: {pulls}) {r['a_prepare']:.0f} s + volume, secrets, `up` to ping {r['a_up']:.0f} s"),
        ("(b) pre-warmed: the new instance prepared first, then stop the old one and move the volume",
         f"**{r['b_total']:.0f} s**", f"stop {r['b_stop']:.0f} s + hot-plug, mount, secrets, `up` to ping {r['b_up']:.0f} s (its {r['b_prepare']:.0f} s of preparation, pulls included, ran while the old one served)"),
        ("(c) the seed HCL module's recreate (estimated)",
         f"~{c_total:.0f} s", f"(a) + one instance launch, taken as the twin's power-on to userspace ({r['a_agent']:.0f} s)"),
    ]
    out = [f"Measured {datetime.date.today().isoformat()} in the VM twin (QEMU TCG, 1 vCPU per VM, three VMs), on {report.machine()}. "
           f"Simulated image pull: {pull_seconds} s per image not yet on the instance's root disk.", "",
           "| order | Dify unreachable | made of |", "| --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_ud = os.path.join(ROOT, "target/vm/user-data.yaml")
    if not os.path.exists(default_ud):
        default_ud = os.path.join(ROOT, "tests/golden/user-data-default.yaml")
    p.add_argument("--user-data", default=default_ud)
    p.add_argument("--release", default=os.path.join(ROOT, "tests/contract/dify-1.13.3"))
    p.add_argument("--pull-seconds", type=int, default=int(os.environ.get("DIFY_TWIN_PULL_SECONDS", "10")))
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=os.path.join(ROOT, "target/bench/downtime.md"))
    args = p.parse_args()
    twin.install_signal_handlers()
    r = measure(args)
    text = table(r, args.pull_seconds)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
