#!/usr/bin/env python3
"""Stand-in container images, made in the guest without any registry (run by twin-images.sh).

A busybox root filesystem plus the scripts in /mnt/twin/standin is imported once per stand-in version
(twin/standin:<hash>, entry point /twin/entry) and tagged with every image name the release's compose file uses, in
every profile, and those of /etc/dify/docker-compose.override.yaml (image_overrides). Talks to dockerd's API on its
socket directly: the docker CLI costs seconds per call under TCG.

    twin-images.py [DOCKER_DIR]     (default /mnt/twin-release/docker)
"""

import glob
import hashlib
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import urllib.parse

import yaml

STANDIN = "/mnt/twin/standin"


class DockerSocket(http.client.HTTPConnection):
    def __init__(self, path="/var/run/docker.sock"):
        super().__init__("localhost", timeout=300)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300)
        self.sock.connect(self.path)


def api(method, url, body=None, headers=None):
    c = DockerSocket()
    c.request(method, url, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def stamp():
    h = hashlib.sha256()
    for p in sorted(glob.glob(os.path.join(STANDIN, "*"))) + [os.path.abspath(__file__)]:
        h.update(p.encode() + open(p, "rb").read())
    return h.hexdigest()[:12]


def rootfs_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, mode
            t.addfile(ti)

        def add_file(name, data, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), mode
            t.addfile(ti, io.BytesIO(data))

        def add_link(name, target):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
            t.addfile(ti)

        for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "etc", "var", "var/run",
                  "run", "proc", "sys", "dev", "root", "data", "twin", "twin/www", "twin/www/console",
                  "twin/www/console/api"]:
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", open("/bin/busybox", "rb").read())
        applets = subprocess.run(["/bin/busybox", "--list"], stdout=subprocess.PIPE, text=True, check=True).stdout.split()
        for a in applets:
            if a != "busybox":
                add_link(f"bin/{a}", "busybox")
        for p in sorted(glob.glob(os.path.join(STANDIN, "*"))):
            name = os.path.basename(p)
            add_file(f"twin/{name}", open(p, "rb").read())
            if name != "entry":
                add_link(f"usr/local/bin/{name}", f"/twin/{name}")
        add_file("twin/www/console/api/ping", b'{"result":"pong"}', 0o644)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add_file("etc/group", b"root:x:0:\n", 0o644)
    return buf.getvalue()


def env_file(path):
    """A compose .env: KEY=value lines; values may use ${OTHER:-default} of earlier keys."""
    env = {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = interpolate(v.strip().strip("'\""), env)
    return env


def interpolate(s, env):
    def sub(m):
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name, os.environ.get(name))
        if op == ":-":
            return value if value else default
        if op == "-":
            return value if value is not None else default
        return value or ""
    return re.sub(r"\$\{([A-Za-z0-9_]+)(?:(:?-)([^}]*))?\}", sub, str(s))


def compose_images(docker_dir):
    env = env_file(os.path.join(docker_dir, ".env")) or env_file(os.path.join(docker_dir, ".env.example"))
    images = {"busybox:latest"}
    for path in [os.path.join(docker_dir, "docker-compose.yaml"), "/etc/dify/docker-compose.override.yaml",
                 os.path.join(docker_dir, "docker-compose.override.yaml")]:
        if not os.path.exists(path):
            continue
        doc = yaml.safe_load(open(path)) or {}
        for svc in (doc.get("services") or {}).values():
            if isinstance(svc, dict) and svc.get("image"):
                images.add(interpolate(svc["image"], env))
    return sorted(i for i in images if i and "$" not in i)


def main():
    docker_dir = sys.argv[1] if len(sys.argv) > 1 else "/mnt/twin-release/docker"
    t0 = time.time()
    for _ in range(120):
        try:
            if api("GET", "/_ping")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(1)
    base_repo, base_tag = "twin/standin", stamp()
    status, _ = api("GET", f"/images/{base_repo}:{base_tag}/json")
    if status != 200:
        q = urllib.parse.urlencode([("fromSrc", "-"), ("repo", base_repo), ("tag", base_tag),
                                    ("changes", 'ENTRYPOINT ["/twin/entry"]'),
                                    ("changes", "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")])
        status, data = api("POST", f"/images/create?{q}", rootfs_tar(), {"Content-Type": "application/x-tar"})
        if status != 200 or b'"error"' in data:
            raise SystemExit(f"twin-images: import failed: {status} {data[:500]!r}")
    images = compose_images(docker_dir)
    for image in images:
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        q = urllib.parse.urlencode({"repo": repo, "tag": tag})
        status, data = api("POST", f"/images/{base_repo}:{base_tag}/tag?{q}")
        if status not in (200, 201):
            raise SystemExit(f"twin-images: tag {image} failed: {status} {data[:300]!r}")
    print(f"{time.strftime('%FT%TZ', time.gmtime())} twin-images: {base_repo}:{base_tag} tagged as {' '.join(images)} "
          f"({docker_dir}, {time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
