"""Packages a built provider binary as a Terraform registry release:

  terraform-provider-dify_<v>_<os>_<arch>.zip   holding terraform-provider-dify_v<v>
  terraform-provider-dify_<v>_manifest.json     a copy of the repository's terraform-registry-manifest.json
  terraform-provider-dify_<v>_SHA256SUMS        covering the zip(s) and the manifest
  terraform-provider-dify_<v>_SHA256SUMS.sig    binary detached GPG signature, when GPG_FINGERPRINT names a key

Usage: package.py VERSION BINARY OUT_DIR [OS_ARCH]   (OS_ARCH defaults to linux_amd64)
"""
import hashlib
import json
import os
import subprocess
import sys
import zipfile

version, binary, out_dir = sys.argv[1:4]
os_arch = sys.argv[4] if len(sys.argv) > 4 else "linux_amd64"
prefix = f"terraform-provider-dify_{version}"
os.makedirs(out_dir, exist_ok=True)

archive = os.path.join(out_dir, f"{prefix}_{os_arch}.zip")
with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo(f"terraform-provider-dify_v{version}" + (".exe" if os_arch.startswith("windows") else ""))
    info.external_attr = 0o755 << 16  # executable, as terraform init expects after unpacking
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as f:
        z.writestr(info, f.read())

# The registry reads the protocol versions from this file; the one at the repository root is the single source.
root_manifest = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "terraform-registry-manifest.json")
with open(root_manifest) as f:
    manifest_data = json.load(f)
manifest = os.path.join(out_dir, f"{prefix}_manifest.json")
with open(manifest, "w") as f:
    json.dump(manifest_data, f, indent=2)
    f.write("\n")

artifacts = sorted(n for n in os.listdir(out_dir) if n.startswith(prefix) and (n.endswith(".zip") or n.endswith("_manifest.json")))
sums = os.path.join(out_dir, f"{prefix}_SHA256SUMS")
with open(sums, "w") as f:
    for name in artifacts:
        with open(os.path.join(out_dir, name), "rb") as a:
            f.write(f"{hashlib.sha256(a.read()).hexdigest()}  {name}\n")

key = os.environ.get("GPG_FINGERPRINT")
if key:
    subprocess.run(["gpg", "--batch", "--yes", "--local-user", key, "--output", sums + ".sig", "--detach-sign", sums], check=True)
print("\n".join(os.path.join(out_dir, n) for n in sorted(os.listdir(out_dir)) if n.startswith(prefix)))
