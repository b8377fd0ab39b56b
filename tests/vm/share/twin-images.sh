#!/bin/sh
# Stand-in container images (see twin-images.py), and the stand-in for pulling them (share/docker). Run by
# docker.service (ExecStartPost, see the image's docker.service.d/twin.conf) and by the stand-in git.
#   twin-images.sh [DOCKER_DIR]
# The pull stand-in goes ahead of /usr/bin/docker on every PATH, before any `systemctl start docker` returns.
install -m 0755 /mnt/twin/docker /usr/local/bin/docker 2>/dev/null || true
# Also puts the stand-in AWS CLI (/mnt/twin/aws: Secrets Manager through the host's twin) on PATH, before
# dify.service (ordered after docker.service) starts, with no image rebuild.
[ -e /usr/local/bin/aws ] || ln -s /mnt/twin/aws /usr/local/bin/aws
exec python3 /mnt/twin/twin-images.py "$@" >>/var/log/twin-images.log 2>&1
