#!/usr/bin/env python3
"""The twin's EC2 instance metadata service (IMDSv2), one HTTP exchange per process on stdin/stdout.

QEMU runs it for each guest connection to 169.254.169.254:80
(`-netdev user,...,guestfwd=tcp:169.254.169.254:80-cmd:python3 imds.py STATE.json`). It answers from STATE.json, which
the runner writes (and may rewrite between boots: a tag added, a new instance id):

    {"instance-id": "i-0...", "availability-zone": "ap-northeast-1a", "tags": {"Name": "...", "dify:data-volume": "vol-0..."}}

PUT /latest/api/token issues a token (kept in STATE.json.tokens); every GET needs a token it issued, as IMDSv2 with
http_tokens=required does. Served: meta-data/instance-id, meta-data/placement/{availability-zone,region},
meta-data/tags/instance (the keys) and meta-data/tags/instance/<key>; 404 otherwise. Each request is appended to
STATE.json.log.
"""

import json
import os
import secrets
import sys
import time


def respond(status, body=b"", content_type="text/plain"):
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\nServer: EC2ws\r\n\r\n"
    sys.stdout.buffer.write(head.encode() + body)
    sys.stdout.buffer.flush()


def read_request(stdin):
    """One HTTP/1.1 request from stdin: (request line, headers with lower-case names, body)."""
    request_line = stdin.readline().decode("latin-1").strip()
    headers = {}
    while True:
        line = stdin.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length") or 0)
    return request_line, headers, stdin.read(length) if length else b""


def main():
    state_path = sys.argv[1]
    request_line, headers, _ = read_request(sys.stdin.buffer)
    parts = request_line.split()
    if len(parts) < 2:
        return respond(400)
    method, path = parts[0], parts[1].split("?")[0]
    with open(state_path) as f:
        state = json.load(f)
    tokens_path = state_path + ".tokens"
    status = 404
    try:
        if path == "/latest/api/token":
            if method != "PUT":
                status = 405
                return respond(405)
            if "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                status = 400
                return respond(400)
            token = secrets.token_urlsafe(24)
            with open(tokens_path, "a") as f:
                f.write(token + "\n")
            status = 200
            return respond(200, token.encode())
        issued = open(tokens_path).read().split() if os.path.exists(tokens_path) else []
        if headers.get("x-aws-ec2-metadata-token") not in issued:
            status = 401
            return respond(401)
        if method != "GET":
            status = 405
            return respond(405)
        tags = state.get("tags", {})
        az = state.get("availability-zone", "ap-northeast-1a")
        values = {
            "/latest/meta-data/instance-id": state.get("instance-id", "i-0twin000000000000"),
            "/latest/meta-data/placement/availability-zone": az,
            "/latest/meta-data/placement/region": az[:-1],
            "/latest/meta-data/tags/instance": "\n".join(sorted(tags)),
        }
        prefix = "/latest/meta-data/tags/instance/"
        if path in values:
            status = 200
            return respond(200, values[path].encode())
        if path.startswith(prefix) and path[len(prefix):] in tags:
            status = 200
            return respond(200, str(tags[path[len(prefix):]]).encode())
        return respond(404)
    finally:
        with open(state_path + ".log", "a") as f:
            f.write(f"{time.time():.3f} {method} {path} {status}\n")


if __name__ == "__main__":
    main()
