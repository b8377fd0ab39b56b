#!/bin/sh
# Scenario "apt-based guest" (kernel command line twin.nodocker): Docker is not on the image, as on a stock
# distribution image; dify-bootstrap must install it (the guest's apt source is the offline repository
# /var/lib/twin-apt, which holds docker.io and git).
set -eu
exec >>/var/log/twin-nodocker.log 2>&1
if dpkg -s docker.io >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive dpkg --purge docker.io
fi
echo "$(date -u +%FT%T.%NZ) docker.io removed; docker on PATH: $(command -v docker || echo none)"
