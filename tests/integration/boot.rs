//! The boot script for real: shellcheck, the rendered cloud-config parsed as YAML and checked by cloud-init, and the
//! disk step of the rendered user data run against stand-in devices and fake `blkid`/`mkfs.ext4`/`mount` on PATH.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{root, venv};
use crate::sandbox::BootSandbox;

fn script() -> PathBuf {
    root().join("src/boot/bootstrap.sh")
}

#[test]
fn the_boot_script_passes_shellcheck() {
    let out = Command::new("shellcheck").arg(script()).output().expect("shellcheck (make test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn rendered_user_data_is_cloud_config_yaml() {
    for golden in ["user-data-default.yaml", "user-data-full.yaml", "user-data-closed-network.yaml"] {
        let check = format!(
            "import yaml,sys; d=yaml.safe_load(open('{}')); assert open('{}').readline().strip()=='#cloud-config'; \
             paths=[w['path'] for w in d['write_files']]; assert '/usr/local/sbin/dify-bootstrap' in paths and '/etc/systemd/system/dify.service' in paths, paths; \
             assert ['systemctl','enable','--now','dify.service'] in d['runcmd']",
            root().join("tests/golden").join(golden).display(),
            root().join("tests/golden").join(golden).display()
        );
        let out = Command::new(venv().join("bin/python")).args(["-c", &check]).output().unwrap();
        assert!(out.status.success(), "{golden}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn rendered_user_data_passes_cloud_init_s_schema_check() {
    for golden in ["user-data-default.yaml", "user-data-full.yaml", "user-data-closed-network.yaml"] {
        let out = Command::new("cloud-init").args(["schema", "--config-file"]).arg(root().join("tests/golden").join(golden)).output().expect("cloud-init (make test installs it)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("Valid cloud-config"), "{golden}: {text}");
    }
}

fn default_user_data() -> String {
    terraform_provider_dify::boot::render(&terraform_provider_dify::boot::DifyConfig::default(), 80, None)
}

fn secrets(s: &BootSandbox) -> String {
    std::fs::read_to_string(s.data_dir().join("secrets/dify-secrets.env")).unwrap()
}

#[test]
fn a_blank_data_volume_is_formatted_once_and_mounted_by_uuid() {
    let s = BootSandbox::new(&default_user_data());
    s.device("sdf");
    let out = s.boot_without_compose("vol-0abc");
    assert!(out.status.success(), "{}", s.log());
    assert_eq!(s.calls("mkfs.ext4"), 1);
    let fstab = std::fs::read_to_string(s.path("fstab")).unwrap();
    assert!(fstab.contains("UUID=uuid-") && fstab.contains("nofail"), "{fstab}");
    let first = secrets(&s);
    for name in ["SECRET_KEY=", "DB_PASSWORD=", "REDIS_PASSWORD=", "SANDBOX_API_KEY=", "PLUGIN_DAEMON_KEY=", "PLUGIN_DIFY_INNER_API_KEY=", "WEAVIATE_API_KEY="] {
        let line = first.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing"));
        assert!(line.len() > name.len() + 30, "{name} is a long random value");
    }
    let init = first.lines().find_map(|l| l.strip_prefix("INIT_PASSWORD=")).expect("INIT_PASSWORD generated");
    assert!((16..=30).contains(&init.len()), "Dify takes an INIT_PASSWORD of at most 30 characters: {}", init.len());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(s.data_dir().join("secrets/dify-secrets.env")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Every later boot: the filesystem is kept, the secrets are reused, fstab is not duplicated.
    let again = s.boot_without_compose("vol-0abc");
    assert!(again.status.success());
    assert_eq!(s.calls("mkfs.ext4"), 1, "never formatted twice");
    assert_eq!(secrets(&s), first, "secrets reused");
    assert_eq!(std::fs::read_to_string(s.path("fstab")).unwrap().lines().count(), 1);
}

#[test]
fn a_volume_with_a_filesystem_is_never_formatted_and_nvme_is_found_by_volume_id() {
    let s = BootSandbox::new(&default_user_data());
    let dev = s.device("disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0def");
    std::fs::write(format!("{}.fs", dev.display()), "existing-uuid").unwrap();
    let out = s.boot_without_compose("vol-0def");
    assert!(out.status.success(), "{}", s.log());
    assert_eq!(s.calls("mkfs.ext4"), 0, "data is never formatted");
    assert!(std::fs::read_to_string(s.path("fstab")).unwrap().contains("UUID=existing-uuid"));
}

#[test]
fn a_missing_data_volume_fails_loudly_after_a_bounded_wait() {
    let s = BootSandbox::new(&default_user_data());
    let started = std::time::Instant::now();
    let out = s.boot_without_compose("vol-0missing");
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the wait is bounded");
    assert!(s.log().contains("FAILED: data volume vol-0missing did not appear within 2s"), "{}", s.log());
    assert_eq!(s.calls("mkfs.ext4"), 0);
}

#[test]
fn a_device_blkid_cannot_probe_is_never_formatted_and_nothing_starts() {
    for exit in ["4", "8"] {
        let s = BootSandbox::new(&default_user_data());
        let dev = s.device("sdf");
        std::fs::write(format!("{}.blkid-exit", dev.display()), exit).unwrap();
        let out = s.boot("vol-0abc");
        assert!(!out.status.success(), "blkid exit {exit}: the boot fails");
        assert_eq!(s.calls("mkfs.ext4"), 0, "blkid exit {exit}: never formatted");
        assert!(s.log().contains(&format!("exit {exit}")) && s.log().contains("not formatting it"), "{}", s.log());
        assert!(s.compose_up_dirs().is_empty(), "nothing started");
        assert!(!s.data_dir().join("secrets").exists(), "nothing written to the root disk's data directory");
    }
}

/// Lays out one NVMe disk as Linux's sysfs shows it: `sys/block/<disk>/device` links the disk's parent (its
/// controller, or under native multipath its subsystem), whose `serial` is the volume id without its dash; `/dev/<disk>`
/// exists only when `node` (the per-path disks of a multipath namespace have none).
fn nvme_disk(s: &BootSandbox, disk: &str, parent: &str, serial: &str, node: bool) {
    let parent_dir = s.path(parent);
    std::fs::create_dir_all(&parent_dir).unwrap();
    std::fs::write(parent_dir.join("serial"), format!("{serial} \n")).unwrap();
    let block = s.path(&format!("sys/block/{disk}"));
    std::fs::create_dir_all(&block).unwrap();
    std::os::unix::fs::symlink(&parent_dir, block.join("device")).unwrap();
    if node {
        s.device(disk);
    }
}

#[test]
fn the_data_volume_is_found_by_its_nvme_serial_and_grown_at_every_boot() {
    let s = BootSandbox::new(&default_user_data());
    nvme_disk(&s, "nvme1n1", "sys/class/nvme/nvme1", "vol0123456789abcdef0", true);
    let out = s.boot_without_compose("vol-0123456789abcdef0");
    assert!(out.status.success(), "{}", s.log());
    assert_eq!(s.calls("mkfs.ext4 -q -L dify-data"), 1);
    let calls = std::fs::read_to_string(s.path("calls")).unwrap();
    assert!(calls.contains(&format!("mkfs.ext4 -q -L dify-data {}", s.path("dev/nvme1n1").display())), "{calls}");
    assert!(calls.contains(&format!("resize2fs {}", s.path("dev/nvme1n1").display())), "the filesystem follows a grown volume: {calls}");
}

/// Under the kernel's native multipath (a controller reporting a shared namespace, as QEMU 10's does) disks are named
/// by subsystem, not by controller: here the data volume's controller is nvme1 but its disk is nvme2n1, and nvme1n1
/// is another volume's disk. Building `/dev/<controller>n1` would format that other volume.
#[test]
fn the_data_volume_is_found_by_serial_when_disks_are_named_by_subsystem() {
    let s = BootSandbox::new(&default_user_data());
    nvme_disk(&s, "nvme1n1", "sys/class/nvme-subsystem/nvme-subsys1", "vol0aaaaaaaaaaaaaaaa", true);
    nvme_disk(&s, "nvme1c0n1", "sys/class/nvme/nvme0", "vol0aaaaaaaaaaaaaaaa", false);
    nvme_disk(&s, "nvme2n1", "sys/class/nvme-subsystem/nvme-subsys2", "vol0123456789abcdef0", true);
    nvme_disk(&s, "nvme2c1n1", "sys/class/nvme/nvme1", "vol0123456789abcdef0", false);
    let out = s.boot_without_compose("vol-0123456789abcdef0");
    assert!(out.status.success(), "{}", s.log());
    let calls = std::fs::read_to_string(s.path("calls")).unwrap();
    assert!(calls.contains(&format!("mkfs.ext4 -q -L dify-data {}", s.path("dev/nvme2n1").display())), "{calls}");
    assert!(!calls.contains(&s.path("dev/nvme1n1").display().to_string()), "the other volume is never touched: {calls}");
}

#[test]
fn data_volume_of_an_hcl_module_instance_at_xvdf_is_found() {
    let s = BootSandbox::new(&default_user_data());
    let dev = s.device("xvdf");
    std::fs::write(format!("{}.fs", dev.display()), "module-uuid").unwrap();
    assert!(s.boot_without_compose("vol-0abc").status.success(), "{}", s.log());
    assert_eq!(s.calls("mkfs.ext4"), 0);
    assert!(std::fs::read_to_string(s.path("fstab")).unwrap().contains("UUID=module-uuid"));
}

/// The closed-network guide's copy script and the boot script must agree on where each image lives in the registry,
/// or the instances pull names the script never pushed.
#[test]
fn the_closed_network_guide_copies_each_image_to_the_name_the_boot_pulls() {
    let guide = std::fs::read_to_string(root().join("docs/guides/closed-network.md")).unwrap();
    let start = guide.find("  path=\"$image\"\n").expect("the guide's copy loop starts with path=\"$image\"");
    let end = start + guide[start..].find("  target=\"$registry/$path\"\n").expect("the guide's copy loop sets target") + "  target=\"$registry/$path\"\n".len();
    let guide_mapping = &guide[start..end];
    let fixture = std::fs::read_to_string(root().join("tests/contract/dify-1.13.3/docker/docker-compose.yaml")).unwrap();
    let mut images: Vec<String> = fixture.lines().filter_map(|l| l.trim().strip_prefix("image: ")).map(str::to_string).collect();
    images.extend(["docker.io/library/nginx:1.27", "docker.io/redis:6", "ghcr.io/acme/tool@sha256:0123", "registry.internal:5000/x/y:1"].map(String::from));
    let program = format!(
        "source <(sed -n '/^registry_image() {{/,/^}}/p' {script})\nguide_target() {{\n  local image=\"$1\" registry=\"$2\" path first target\n{guide_mapping}  printf '%s\\n' \"$target\"\n}}\nfor image in \"$@\"; do\n  printf '%s %s %s\\n' \"$image\" \"$(registry_image \"$image\" mirror.example.com/dify)\" \"$(guide_target \"$image\" mirror.example.com/dify)\"\ndone\n",
        script = script().display()
    );
    let out = Command::new("bash").arg("-c").arg(&program).arg("mapping").args(&images).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(lines.lines().count(), images.len(), "{lines}");
    for line in lines.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[1], parts[2], "{}: the boot pulls {}, the guide pushes {}", parts[0], parts[1], parts[2]);
        assert!(parts[1].starts_with("mirror.example.com/dify/"), "{line}");
    }
    assert!(lines.contains("postgres:15-alpine mirror.example.com/dify/library/postgres:15-alpine"), "{lines}");
}

/// How many times the stand-in `tool` ran (its exact name: `mount` is not `mountpoint`).
fn ran(s: &BootSandbox, tool: &str) -> usize {
    std::fs::read_to_string(s.path("calls")).unwrap_or_default().lines().filter(|l| l.split(' ').next() == Some(tool)).count()
}

/// `dify-bootstrap grow` (dify-grow.service, started by the user data's udev rule when a block device reports a new
/// size) grows the mounted data filesystem and does nothing else: never a blkid, mkfs, mount or Compose; with no data
/// volume mounted it changes nothing. (The online growth itself runs in the VM twin, scenario m: this machine's
/// containers lack CAP_SYS_RESOURCE, which an online resize2fs needs.)
#[test]
fn the_grow_step_only_grows_a_mounted_data_filesystem() {
    let s = BootSandbox::new(&default_user_data());
    s.device("sdf");
    let out = s.grow();
    assert!(out.status.success(), "{}", s.log());
    assert!(s.log().contains("no data volume mounted"), "{}", s.log());
    for tool in ["blkid", "mkfs.ext4", "mount", "resize2fs", "docker"] {
        assert_eq!(ran(&s, tool), 0, "{tool} ran with nothing mounted");
    }
    assert!(s.boot_without_compose("vol-0abc").status.success(), "{}", s.log());
    let before = (ran(&s, "blkid"), ran(&s, "mkfs.ext4"), ran(&s, "mount"), ran(&s, "resize2fs"));
    let out = s.grow();
    assert!(out.status.success(), "{}", s.log());
    assert_eq!(ran(&s, "resize2fs"), before.3 + 1, "one resize2fs on the mounted volume");
    assert_eq!((ran(&s, "blkid"), ran(&s, "mkfs.ext4"), ran(&s, "mount")), (before.0, before.1, before.2), "grow probed, formatted or mounted something");
    assert_eq!(ran(&s, "docker"), 0);
    let grow_calls = std::fs::read_to_string(s.path("calls")).unwrap();
    assert!(grow_calls.lines().filter(|l| l.starts_with("resize2fs")).last().unwrap().ends_with("/dev/sdf"), "{grow_calls}");
}

/// The user data installs the grow service and its udev rule: the kernel's resize event starts it, and only when the
/// data volume is mounted.
#[test]
fn the_user_data_grows_the_data_filesystem_on_the_kernel_s_resize_event() {
    let user_data = default_user_data();
    assert!(user_data.contains("/etc/udev/rules.d/90-dify-grow.rules") && user_data.contains("ENV{RESIZE}==\"1\"") && user_data.contains("start dify-grow.service"), "{user_data}");
    assert!(user_data.contains("ConditionPathIsMountPoint=/opt/dify-data") && user_data.contains("ExecStart=/usr/local/sbin/dify-bootstrap grow"), "{user_data}");
}

