"""The baseline: a plain sequential boto3 upload of a raw image into an EBS snapshot (zero blocks skipped)."""
import base64
import hashlib
import os
import sys

import boto3

BLOCK = 512 * 1024
path, endpoint = sys.argv[1], sys.argv[2]
ebs = boto3.client("ebs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench")
size_gib = max(1, -(-os.path.getsize(path) // (1 << 30)))
snapshot = ebs.start_snapshot(VolumeSize=size_gib)["SnapshotId"]
digests = []
with open(path, "rb") as f:
    index = 0
    while True:
        block = f.read(BLOCK)
        if not block:
            break
        block = block.ljust(BLOCK, b"\0")
        if block.count(0) != BLOCK:
            digest = hashlib.sha256(block).digest()
            ebs.put_snapshot_block(
                SnapshotId=snapshot, BlockIndex=index, BlockData=block, DataLength=BLOCK,
                Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256",
            )
            digests.append(digest)
        index += 1
aggregate = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=len(digests), Checksum=aggregate,
                      ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
print(snapshot)
