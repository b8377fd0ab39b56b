"""Writes the benchmark image: a sparse 1 GiB file holding 256 MiB of random data in four 64 MiB extents."""
import os
import sys

GIB = 1 << 30
MIB = 1 << 20
path = sys.argv[1]
rng = open("/dev/urandom", "rb")
with open(path, "wb") as f:
    f.truncate(GIB)
    for start in (0, 256 * MIB, 512 * MIB, 768 * MIB):
        f.seek(start)
        for _ in range(64):
            f.write(rng.read(MIB))
print(f"{path}: 1 GiB, 256 MiB of data")
