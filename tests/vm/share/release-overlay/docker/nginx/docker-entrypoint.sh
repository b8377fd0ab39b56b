#!/bin/sh
# The twin's stand-in for the release's nginx/docker-entrypoint.sh (the compose file's nginx entrypoint copies and
# runs this file): the stand-in nginx of the twin's images.
exec /twin/nginx
