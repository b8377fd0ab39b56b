//! The boot script for real: shellcheck, the rendered cloud-config parsed as YAML, and the disk step run against
//! stand-in devices and fake `blkid`/`mkfs.ext4`/`mount` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{root, venv};

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
    for golden in ["user-data-default.yaml", "user-data-full.yaml"] {
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
    for golden in ["user-data-default.yaml", "user-data-full.yaml"] {
        let out = Command::new("cloud-init").args(["schema", "--config-file"]).arg(root().join("tests/golden").join(golden)).output().expect("cloud-init (make test installs it)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("Valid cloud-config"), "{golden}: {text}");
    }
}

/// A sandbox for the disk step: stand-in devices, fake tools that record their calls, settings and fstab.
struct DiskSandbox {
    dir: tempfile::TempDir,
}

impl DiskSandbox {
    fn new() -> DiskSandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("dev/disk/by-id")).unwrap();
        let calls = dir.path().join("calls");
        // blkid: a device "has a filesystem" when DEVICE.fs exists; -p probes, -s UUID prints its UUID.
        let tools = [
            ("blkid", format!("#!/bin/sh\necho \"blkid $*\" >> {c}\nfor a in \"$@\"; do d=\"$a\"; done\n[ -f \"$d.fs\" ] || exit 2\ncase \"$*\" in *UUID*) cat \"$d.fs\";; esac\nexit 0\n", c = calls.display())),
            ("mkfs.ext4", format!("#!/bin/sh\necho \"mkfs.ext4 $*\" >> {c}\nfor a in \"$@\"; do d=\"$a\"; done\necho uuid-$$ > \"$d.fs\"\n", c = calls.display())),
            ("mount", format!("#!/bin/sh\necho \"mount $*\" >> {c}\n", c = calls.display())),
            ("mountpoint", "#!/bin/sh\nexit 1\n".to_string()),
            ("logger", "#!/bin/sh\ncat >/dev/null\n".to_string()),
            // aws secretsmanager get-secret-value --secret-id ARN …: answers "value-of-<last part of the ARN>".
            ("aws", format!("#!/bin/sh\necho \"aws $*\" >> {c}\nwhile [ \"$1\" != --secret-id ]; do shift; done\necho \"value-of-${{2##*:}}\"\n", c = calls.display())),
        ];
        for (name, body) in tools {
            let p = bin.join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("settings.env"), "DIFY_VERSION='1.13.3'\nDIFY_COMPOSE_VERSION='v2.29.7'\n").unwrap();
        std::fs::write(dir.path().join("fstab"), "").unwrap();
        DiskSandbox { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn device(&self, name: &str) -> PathBuf {
        let p = self.path(&format!("dev/{name}"));
        std::fs::write(&p, "").unwrap();
        p
    }

    fn run(&self, volume: &str) -> std::process::Output {
        Command::new("bash")
            .arg(script())
            .env("PATH", format!("{}:{}", self.path("bin").display(), std::env::var("PATH").unwrap_or_default()))
            .env("DIFY_SETTINGS", self.path("settings.env"))
            .env("DIFY_DATA_DIR", self.path("data"))
            .env("DIFY_DATA_VOLUME_ID", volume)
            .env("DIFY_DEV_ROOT", self.dir.path())
            .env("DIFY_FSTAB", self.path("fstab"))
            .env("DIFY_LOG", self.path("bootstrap.log"))
            .env("DIFY_CONSOLE", "/dev/null")
            .env("DIFY_DEVICE_WAIT_SECONDS", "2")
            .env("DIFY_SKIP_COMPOSE", "1")
            .output()
            .unwrap()
    }

    fn calls(&self, tool: &str) -> usize {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default().lines().filter(|l| l.starts_with(tool)).count()
    }
}

fn secrets(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data/secrets/dify-secrets.env")).unwrap()
}

#[test]
fn a_blank_data_volume_is_formatted_once_and_mounted_by_uuid() {
    let s = DiskSandbox::new();
    s.device("sdf");
    let out = s.run("vol-0abc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(s.calls("mkfs.ext4"), 1);
    let fstab = std::fs::read_to_string(s.path("fstab")).unwrap();
    assert!(fstab.contains("UUID=uuid-") && fstab.contains("nofail"), "{fstab}");
    let first = secrets(s.dir.path());
    for name in ["SECRET_KEY=", "DB_PASSWORD=", "REDIS_PASSWORD=", "SANDBOX_API_KEY=", "PLUGIN_DAEMON_KEY=", "PLUGIN_DIFY_INNER_API_KEY=", "WEAVIATE_API_KEY="] {
        let line = first.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing"));
        assert!(line.len() > name.len() + 30, "{name} is a long random value");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(s.path("data/secrets/dify-secrets.env")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Every later boot: the filesystem is kept, the secrets are reused, fstab is not duplicated.
    let again = s.run("vol-0abc");
    assert!(again.status.success());
    assert_eq!(s.calls("mkfs.ext4"), 1, "never formatted twice");
    assert_eq!(secrets(s.dir.path()), first, "secrets reused");
    assert_eq!(std::fs::read_to_string(s.path("fstab")).unwrap().lines().count(), 1);
}

#[test]
fn a_volume_with_a_filesystem_is_never_formatted_and_nvme_is_found_by_volume_id() {
    let s = DiskSandbox::new();
    let dev = s.device("disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0def");
    std::fs::write(format!("{}.fs", dev.display()), "existing-uuid").unwrap();
    let out = s.run("vol-0def");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(s.calls("mkfs.ext4"), 0, "data is never formatted");
    assert!(std::fs::read_to_string(s.path("fstab")).unwrap().contains("UUID=existing-uuid"));
}

#[test]
fn secret_env_values_are_read_from_secrets_manager_at_boot_into_a_0600_file() {
    let s = DiskSandbox::new();
    s.device("sdf");
    std::fs::write(s.path("settings.env.secret-env"), "SMTP_PASSWORD=arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:smtp\nS3_SECRET_KEY=arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:s3\n").unwrap();
    let out = s.run("vol-0abc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(s.calls("aws secretsmanager get-secret-value"), 2);
    let external = std::fs::read_to_string(s.path("data/secrets/external.env")).unwrap();
    assert_eq!(external, "SMTP_PASSWORD=value-of-smtp\nS3_SECRET_KEY=value-of-s3\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(s.path("data/secrets/external.env")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_missing_data_volume_fails_loudly_after_a_bounded_wait() {
    let s = DiskSandbox::new();
    let started = std::time::Instant::now();
    let out = s.run("vol-0missing");
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the wait is bounded");
    let log = std::fs::read_to_string(s.path("bootstrap.log")).unwrap();
    assert!(log.contains("FAILED: data volume vol-0missing did not appear within 2s"), "{log}");
    assert_eq!(s.calls("mkfs.ext4"), 0);
}
