//! The pre-warmed replacement's instance side (issue 17): `dify-bootstrap` installs Docker, fetches the release and
//! pulls every image the project will run before it needs its data volume, then prints the `DIFY-PREPARED <version>`
//! console line the provider waits for; a failure before that prints a FAILED line and never the marker. Run in the
//! boot sandbox, with real Docker Compose v2 resolving what is pulled and what `up` runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use terraform_provider_dify::boot::{self, DifyConfig};

use crate::harness::venv;
use crate::sandbox::BootSandbox;

const MARKER: &str = "dify-bootstrap: DIFY-PREPARED 1.13.3";

fn sandbox(config: &DifyConfig) -> BootSandbox {
    BootSandbox::new(&boot::render(config, 80, None))
}

/// Where `needle` first shows in `text`, or a panic naming what is missing.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
}

/// The images of the project `docker compose up` ran, as real Compose resolves it (Dify's .env, secrets included).
fn images_up_runs(project: &Path) -> BTreeSet<String> {
    let out = Command::new(venv().join("bin/docker-compose")).args(["config", "--images"]).current_dir(project).env("HOME", project).output().unwrap();
    assert!(out.status.success(), "docker-compose config --images: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn images_pulled(s: &BootSandbox) -> BTreeSet<String> {
    std::fs::read_to_string(s.path("pulled-images")).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn every_image_up_runs_is_pulled_and_the_marker_printed_before_the_data_volume_is_looked_for() {
    let registry = DifyConfig { image_registry: Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub".into()), vector_store: Some("qdrant".into()), ..DifyConfig::default() };
    for config in [DifyConfig::default(), registry] {
        let s = sandbox(&config);
        s.device("sdf");
        assert!(s.boot("vol-0abc").status.success(), "{}", s.log());
        let log = s.log();
        assert!(at(&log, MARKER) < at(&log, "is blank; creating a filesystem"), "the marker comes before the volume is touched:\n{log}");
        assert!(at(&log, "Dify 1.13.3 started") > at(&log, MARKER));
        let calls = std::fs::read_to_string(s.path("calls")).unwrap();
        assert!(at(&calls, "docker compose --env-file .env.prepare pull --quiet ") < at(&calls, "blkid"), "pulled before the disk is probed:\n{calls}");
        if config.image_registry.is_some() {
            assert!(at(&calls, "docker login") < at(&calls, " pull "), "logged in to the registry before the pull:\n{calls}");
        }
        let project = s.compose_up_dirs().last().cloned().expect("docker compose up ran");
        let pulled = images_pulled(&s);
        assert!(pulled.len() >= 10, "{pulled:?}");
        assert_eq!(pulled, images_up_runs(&project), "the images pulled before the volume are exactly the ones up runs");
        assert!(!project.join(".env.prepare").exists(), "the settings-only env file is gone once pulled");
        assert_eq!(calls.lines().filter(|l| l.contains(" up ")).count(), 1);

        // A reboot: every image is there, so no registry is asked anything (not even for `:latest` ones).
        assert!(s.boot("vol-0abc").status.success(), "{}", s.log());
        let calls = std::fs::read_to_string(s.path("calls")).unwrap();
        assert_eq!(calls.lines().filter(|l| l.contains(" pull ")).count(), 1, "a reboot pulls nothing:\n{calls}");
        assert!(s.log().contains("every image of Dify 1.13.3 is on this instance already"), "{}", s.log());
        assert_eq!(s.compose_up_dirs().len(), 2);
    }
}

#[test]
fn a_prepared_instance_waits_for_its_data_volume_after_the_marker() {
    let s = sandbox(&DifyConfig::default());
    let out = s.boot("vol-0late");
    assert!(!out.status.success(), "the sandbox waits 2 s (DIFY_DEVICE_WAIT_SECONDS), then fails");
    let log = s.log();
    assert!(at(&log, MARKER) < at(&log, "waiting up to 2s for data volume vol-0late to be attached"), "{log}");
    assert!(at(&log, "waiting up to 2s") < at(&log, "FAILED: data volume vol-0late did not appear within 2s"), "{log}");
    assert!(!images_pulled(&s).is_empty(), "pulled while waiting for nothing");
    assert!(s.compose_up_dirs().is_empty());
    assert!(!s.data_dir().join("secrets").exists(), "no secret made on the root disk");
    assert!(!s.path("root/opt/dify/1.13.3/docker/volumes").is_symlink(), "the release's volumes are not linked to a data directory that is not mounted");
}

#[test]
fn without_a_data_volume_the_marker_is_printed_and_nothing_waits() {
    let s = sandbox(&DifyConfig::default());
    let started = std::time::Instant::now();
    assert!(s.boot("").status.success(), "{}", s.log());
    let log = s.log();
    assert!(at(&log, MARKER) < at(&log, "no data volume for this instance"), "{log}");
    assert!(!log.contains("waiting up to"), "{log}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(s.compose_up_dirs().len(), 1);
}

#[test]
fn a_step_that_fails_before_the_marker_prints_failed_and_never_the_marker() {
    // A pull that fails (registry unreachable), a release whose pinned checksum is wrong, Docker that will not start
    // (a command failing under `set -e`, which no `fail` explains): a FAILED line, no marker, the volume untouched.
    let pull = sandbox(&DifyConfig::default());
    std::fs::write(pull.path("pull-fails"), "").unwrap();
    let release = BootSandbox::new("#cloud-config\nwrite_files: []\n");
    let (tarball, _) = release.release_tarball("1.13.3");
    release.serve("s3://dify-artifacts/dify.tar.gz", &tarball);
    release.write_user_data(&boot::render(&DifyConfig { release_url: Some("s3://dify-artifacts/dify.tar.gz".into()), release_sha256: Some("0".repeat(64)), ..DifyConfig::default() }, 80, None));
    let docker = sandbox(&DifyConfig::default());
    std::fs::write(docker.path("bin/systemctl"), "#!/bin/sh\necho \"systemctl $*\" >> \"$SANDBOX/calls\"\necho 'Job for docker.service failed.' >&2\nexit 1\n").unwrap();
    for (s, reason) in [(pull, "FAILED: pulling the images of Dify 1.13.3 from their registries"), (release, "has SHA-256"), (docker, "FAILED: exit status 1")] {
        s.device("sdf");
        assert!(!s.boot("vol-0abc").status.success(), "{}", s.log());
        let log = s.log();
        assert!(log.contains(reason), "{reason}:\n{log}");
        assert!(!log.contains("DIFY-PREPARED"), "{reason}: no marker after a failure:\n{log}");
        assert_eq!(s.calls("blkid") + s.calls("mkfs") + s.calls("mount"), 0, "{reason}: the data volume is never looked at");
        assert!(s.compose_up_dirs().is_empty());
    }
}
