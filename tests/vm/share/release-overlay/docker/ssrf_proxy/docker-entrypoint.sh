#!/bin/sh
# The twin's stand-in for the release's ssrf_proxy/docker-entrypoint.sh: a process that stays up.
exec /twin/entry squid
