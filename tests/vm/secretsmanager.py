#!/usr/bin/env python3
"""The twin's Secrets Manager, one HTTP exchange per process on stdin/stdout, shared by every VM of a scenario.

QEMU runs it for each guest connection to 169.254.169.254:4566
(`-netdev user,...,guestfwd=tcp:169.254.169.254:4566-cmd:python3 secretsmanager.py STORE.json`), as imds.py serves
metadata. It speaks Secrets Manager's JSON protocol (POST /, `X-Amz-Target: secretsmanager.<Operation>`), the
operations dify-bootstrap uses through the guest's stand-in `aws` (share/aws):

    GetSecretValue {"SecretId"}                  -> {"ARN", "Name", "SecretString", "VersionId"}
    PutSecretValue {"SecretId", "SecretString"}  -> {"ARN", "Name", "VersionId"}

STORE.json (written by the runner, then by this under an exclusive lock, since the VMs of a scenario call at once):

    {"dify/prd/app-secrets": {"SecretString": "{}", "versions": 1}}

A secret not in the store answers ResourceNotFoundException, as AWS does. Each request is appended to STORE.json.log
as `time operation secret-id status` (never a value): the runner reads who wrote, and when.
"""

import fcntl
import json
import os
import sys
import time

from imds import read_request  # the same one-exchange HTTP reading (QEMU runs both from this directory)


def respond(status, body):
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n")
    sys.stdout.buffer.write(head.encode() + data)
    sys.stdout.buffer.flush()


def arn(name):
    return f"arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:{name}-Tw1n00"


def main():
    store_path = sys.argv[1]
    _, headers, body = read_request(sys.stdin.buffer)
    body = json.loads(body or b"{}")
    operation = headers.get("x-amz-target", "").rpartition(".")[2]
    secret_id = str(body.get("SecretId", ""))
    name = secret_id.split(":secret:", 1)[1].rsplit("-", 1)[0] if ":secret:" in secret_id else secret_id
    status = 400
    try:
        with open(store_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(store_path) as f:
                store = json.load(f)
            secret = store.get(name)
            if operation not in ("GetSecretValue", "PutSecretValue"):
                return respond(400, {"__type": "InvalidRequestException", "message": f"the twin does not model {operation}"})
            if secret is None:
                return respond(400, {"__type": "ResourceNotFoundException",
                                     "message": "Secrets Manager can't find the specified secret."})
            if operation == "PutSecretValue":
                if not isinstance(body.get("SecretString"), str):
                    return respond(400, {"__type": "InvalidParameterException", "message": "SecretString is required"})
                secret["SecretString"] = body["SecretString"]
                secret["versions"] = secret.get("versions", 1) + 1
                with open(store_path + ".new", "w") as f:
                    json.dump(store, f)
                os.replace(store_path + ".new", store_path)
                status = 200
                return respond(200, {"ARN": arn(name), "Name": name, "VersionId": f"v{secret['versions']}"})
            status = 200
            return respond(200, {"ARN": arn(name), "Name": name, "SecretString": secret["SecretString"],
                                 "VersionId": f"v{secret.get('versions', 1)}"})
    finally:
        with open(store_path + ".log", "a") as f:
            f.write(f"{time.time():.3f} {operation} {secret_id} {status}\n")


if __name__ == "__main__":
    main()
