#!/bin/sh
# Stand-in container images (see twin-images.py). Run by docker.service (ExecStartPost, see the image's
# docker.service.d/twin.conf) and by the stand-in git.   twin-images.sh [DOCKER_DIR]
exec python3 /mnt/twin/twin-images.py "$@" >>/var/log/twin-images.log 2>&1
