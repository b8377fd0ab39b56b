#!/bin/sh
# Stand-in container images (see twin-images.py), and the stand-in for pulling them (share/docker). Run by
# docker.service (ExecStartPost, see the image's docker.service.d/twin.conf) and by the stand-in git.
#   twin-images.sh [DOCKER_DIR]
# The pull stand-in goes ahead of /usr/bin/docker on every PATH, before any `systemctl start docker` returns.
install -m 0755 /mnt/twin/docker /usr/local/bin/docker 2>/dev/null || true
exec python3 /mnt/twin/twin-images.py "$@" >>/var/log/twin-images.log 2>&1
