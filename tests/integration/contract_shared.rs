//! The compose contract of a multi-instance stack: instances `dify:index` 0 and 1, each with its own data volume, boot
//! the user data rendered with the stack's shared secret (`boot::shared_secret_name`) through their real
//! `dify-bootstrap`, against one Secrets Manager (the moto emulator, through a real client: boto3), and real Docker
//! Compose v2 resolves both projects. They must be one Dify: the same secrets in every service that reads them.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use terraform_provider_dify::boot::{self, DifyConfig, S3Storage};

use crate::contract::{assert_works, Booted, Resolved};
use crate::harness::{wait_with_deadline, Moto};
use crate::sandbox::BootSandbox;

const STACK: &str = "prd";

/// Every value a session, a plugin call or a sandboxed run checks on whichever instance the load balancer picks.
const SHARED: &[(&str, &str)] = &[
    ("api", "SECRET_KEY"),
    ("api", "INIT_PASSWORD"),
    ("api", "PLUGIN_DAEMON_KEY"),
    ("api", "INNER_API_KEY_FOR_PLUGIN"),
    ("api", "CODE_EXECUTION_API_KEY"),
    ("plugin_daemon", "SERVER_KEY"),
    ("plugin_daemon", "DIFY_INNER_API_KEY"),
    ("sandbox", "API_KEY"),
];

/// How long a bootstrap may take here: index 1 polls every 10 s.
const BOOT_WITHIN: Duration = Duration::from_secs(90);

fn secret_name() -> String {
    boot::shared_secret_name(STACK)
}

/// One instance of the stack: its own sandbox and data volume, the stack's Secrets Manager, its `dify:index` tag.
fn instance(moto: &Moto, index: &str, config: &DifyConfig) -> BootSandbox {
    let sandbox = BootSandbox::new(&boot::render(config, 80, Some(&secret_name())));
    sandbox.device("sdf");
    sandbox.use_secrets_manager(&moto.endpoint());
    sandbox.instance_tag("dify:index", index);
    sandbox
}

/// The stack's shared secret as the provider creates it before launching instances: an empty JSON object.
fn create_shared_secret(sandbox: &BootSandbox) {
    let out = sandbox.aws(&["secretsmanager", "create-secret", "--name", &secret_name(), "--secret-string", "{}", "--region", "us-east-1"]);
    assert!(out.status.success(), "create-secret: {}", String::from_utf8_lossy(&out.stderr));
}

fn shared_secret(sandbox: &BootSandbox) -> serde_json::Map<String, serde_json::Value> {
    let out = sandbox.aws(&["secretsmanager", "get-secret-value", "--secret-id", &secret_name(), "--region", "us-east-1", "--query", "SecretString", "--output", "text"]);
    assert!(out.status.success(), "get-secret-value: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the shared secret is a JSON object")
}

/// Starts an instance's bootstrap and returns while it runs.
fn spawn_boot(sandbox: &BootSandbox, volume: &str) -> Child {
    sandbox.command(volume).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Waits until `sandbox`'s bootstrap log holds `line`, while its bootstrap runs.
fn wait_for_line(sandbox: &BootSandbox, child: &mut Child, line: &str) {
    let deadline = Instant::now() + BOOT_WITHIN;
    while !sandbox.log().contains(line) {
        assert!(child.try_wait().unwrap().is_none(), "the bootstrap ended before logging {line:?}:\n{}", sandbox.log());
        assert!(Instant::now() < deadline, "no {line:?} within {BOOT_WITHIN:?}:\n{}", sandbox.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn booted(sandbox: BootSandbox, config: &DifyConfig) -> Booted {
    let project = sandbox.compose_up_dirs().last().cloned().expect("docker compose up ran");
    Booted { resolved: Resolved::of(&project), sandbox, config: config.clone(), app_port: 80 }
}

fn assert_one_dify(zero: &Booted, one: &Booted) {
    assert_works(zero);
    assert_works(one);
    for (service, key) in SHARED {
        assert_eq!(zero.resolved.var(service, key), one.resolved.var(service, key), "{service} {key}: the same on both instances");
    }
}

/// The values of the shared secret appear in no log and on no command line (the sandbox's `calls`).
fn assert_no_value_leaked(secret: &serde_json::Map<String, serde_json::Value>, instances: &[&Booted]) {
    for b in instances {
        let calls = std::fs::read_to_string(b.sandbox.path("calls")).unwrap();
        for (name, value) in secret {
            let value = value.as_str().unwrap();
            assert!(!b.sandbox.log().contains(value), "the bootstrap log holds the value of {name}");
            assert!(!calls.contains(value), "a command line holds the value of {name}");
        }
        for call in calls.lines().filter(|l| l.starts_with("aws ")) {
            assert!(call.contains("--region us-east-1"), "an aws call without the instance's region: {call}");
        }
    }
}

#[test]
fn two_instances_booting_at_once_share_one_set_of_secrets_written_by_index_0_only() {
    let moto = Moto::start();
    // Uploads and plugins in one bucket, as a multi-instance stack must have them (`s3_storage`).
    let config = DifyConfig { s3_storage: Some(S3Storage { bucket: "dify-shared-files".into(), region: Some("us-east-1".into()) }), ..DifyConfig::default() };
    let (zero, one) = (instance(&moto, "0", &config), instance(&moto, "1", &config));
    create_shared_secret(&zero);

    // Index 1 first, on a blank volume: it waits, and writes nothing.
    let mut late = spawn_boot(&one, "vol-0one");
    wait_for_line(&one, &mut late, &format!("instance 1: waiting for instance 0 to fill {} (SECRET_KEY", secret_name()));
    assert!(shared_secret(&zero).is_empty(), "index 1 wrote the shared secret");
    assert!(one.compose_up_dirs().is_empty(), "index 1 started Dify with secrets of its own");

    // Index 0 fills it; index 1 goes on with its values.
    assert!(zero.boot("vol-0zero").status.success(), "index 0:\n{}", zero.log());
    assert!(wait_with_deadline(&mut late, BOOT_WITHIN).success(), "index 1:\n{}", one.log());
    let (zero, one) = (booted(zero, &config), booted(one, &config));
    assert_one_dify(&zero, &one);
    for b in [&zero, &one] {
        assert_eq!((b.resolved.var("api", "STORAGE_TYPE"), b.resolved.var("api", "S3_BUCKET_NAME")), ("s3".to_string(), "dify-shared-files".to_string()), "uploads in the shared bucket");
        assert_eq!(b.resolved.var("plugin_daemon", "PLUGIN_STORAGE_TYPE"), "aws_s3", "plugins in S3, not on one instance's disk");
        assert_eq!(b.resolved.var("plugin_daemon", "PLUGIN_STORAGE_OSS_BUCKET"), "dify-shared-files", "plugins in the shared bucket");
        assert_eq!(b.resolved.var("plugin_daemon", "PLUGIN_S3_USE_AWS_MANAGED_IAM"), "true", "with the instance role, no key");
    }
    let secret = shared_secret(&zero.sandbox);
    assert_eq!(secret["SECRET_KEY"], zero.resolved.var("api", "SECRET_KEY"), "the secret holds what Dify reads");
    assert_eq!(zero.sandbox.calls("aws secretsmanager put-secret-value"), 1, "index 0 wrote once");
    assert_eq!(one.sandbox.calls("aws secretsmanager put-secret-value"), 0, "index 1 never writes");
    assert_no_value_leaked(&secret, &[&zero, &one]);

    // Index 0 booting again with the secret full changes nothing.
    assert!(zero.sandbox.boot("vol-0zero").status.success(), "index 0 again:\n{}", zero.sandbox.log());
    assert_eq!(zero.sandbox.calls("aws secretsmanager put-secret-value"), 1, "a full secret is never written again");
    assert_eq!(shared_secret(&zero.sandbox), secret);
}

#[test]
fn going_from_one_instance_to_two_keeps_the_secrets_and_a_later_name_is_added_by_index_0() {
    let moto = Moto::start();
    let config = DifyConfig::default();
    // A single-instance stack: its secrets on its volume only.
    let zero = BootSandbox::new(&boot::render(&config, 80, None));
    zero.device("sdf");
    assert!(zero.boot("vol-0zero").status.success(), "{}", zero.log());
    let before = Resolved::of(zero.compose_up_dirs().last().unwrap());
    let on_volume = std::fs::read_to_string(zero.data_dir().join("secrets/dify-secrets.env")).unwrap();

    // instance_count 1 -> 2: the same volume boots as index 0 of a stack with a shared secret, and index 1 joins.
    zero.write_user_data(&boot::render(&config, 80, Some(&secret_name())));
    zero.use_secrets_manager(&moto.endpoint());
    zero.instance_tag("dify:index", "0");
    create_shared_secret(&zero);
    assert!(zero.boot("vol-0zero").status.success(), "{}", zero.log());
    let one = instance(&moto, "1", &config);
    assert!(one.boot("vol-0one").status.success(), "{}", one.log());
    let secret = shared_secret(&zero);
    for line in on_volume.lines() {
        let (name, value) = line.split_once('=').unwrap();
        assert_eq!(secret[name], value, "{name} carried into the shared secret unchanged");
    }
    let (zero, one) = (booted(zero, &config), booted(one, &config));
    assert_one_dify(&zero, &one);
    for (service, key) in SHARED {
        assert_eq!(zero.resolved.var(service, key), before.var(service, key), "{service} {key}: no session breaks");
    }

    // A later configuration needs a new generated secret (OpenSearch's password): index 1 waits for that name only,
    // index 0 adds it, and no value the secret held changes.
    let opensearch = DifyConfig { vector_store: Some("opensearch".into()), ..DifyConfig::default() };
    for b in [&zero, &one] {
        b.sandbox.write_user_data(&boot::render(&opensearch, 80, Some(&secret_name())));
    }
    let mut late = spawn_boot(&one.sandbox, "vol-0one");
    wait_for_line(&one.sandbox, &mut late, &format!("waiting for instance 0 to fill {} (OPENSEARCH_PASSWORD)", secret_name()));
    assert!(zero.sandbox.boot("vol-0zero").status.success(), "{}", zero.sandbox.log());
    assert!(wait_with_deadline(&mut late, BOOT_WITHIN).success(), "{}", one.sandbox.log());
    let grown = shared_secret(&zero.sandbox);
    assert_eq!(grown.len(), secret.len() + 1, "one name added");
    assert!(secret.iter().all(|(name, value)| &grown[name] == value), "no value the secret held changed");
    let (zero, one) = (booted(zero.sandbox, &opensearch), booted(one.sandbox, &opensearch));
    assert_one_dify(&zero, &one);
    assert_eq!(zero.resolved.var("api", "OPENSEARCH_PASSWORD"), one.resolved.var("api", "OPENSEARCH_PASSWORD"));
    assert_eq!(zero.resolved.var("opensearch", "OPENSEARCH_INITIAL_ADMIN_PASSWORD"), one.resolved.var("api", "OPENSEARCH_PASSWORD"));
    assert_no_value_leaked(&grown, &[&zero, &one]);
}

#[test]
fn an_instance_waiting_in_vain_or_a_missing_secret_stops_the_boot_naming_the_secret() {
    let moto = Moto::start();
    let config = DifyConfig::default();
    // No shared secret at all (the provider creates it first): index 0 stops before generating anything.
    let zero = instance(&moto, "0", &config);
    assert!(!zero.boot("vol-0zero").status.success());
    assert!(zero.log().contains(&format!("FAILED: reading shared secret {} from Secrets Manager", secret_name())), "{}", zero.log());
    assert!(zero.compose_up_dirs().is_empty());

    // Index 1 while index 0 never comes: a failure naming the secret and what it lacks, after the wait.
    create_shared_secret(&zero);
    let one = instance(&moto, "1", &config);
    let out = one.command("vol-0one").env("DIFY_SHARED_SECRETS_WAIT_SECONDS", "10").output().unwrap();
    assert!(!out.status.success());
    let log = one.log();
    assert!(log.contains(&format!("FAILED: shared secret {} still lacks SECRET_KEY", secret_name())) && log.contains("after 10s"), "{log}");
    assert!(one.compose_up_dirs().is_empty(), "Dify never starts with secrets of its own");
    assert!(shared_secret(&one).is_empty());

    // A secret that is not a JSON object of strings (set through index 1's sandbox, so index 0's calls are its
    // own): index 0 stops, and never overwrites it.
    let out = one.aws(&["secretsmanager", "put-secret-value", "--secret-id", &secret_name(), "--secret-string", "[\"set by hand\"]", "--region", "us-east-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!zero.boot("vol-0zero").status.success());
    assert!(zero.log().contains("the shared secret is not a JSON object of names to strings"), "{}", zero.log());
    assert!(zero.log().contains(&format!("FAILED: using shared secret {}", secret_name())), "{}", zero.log());
    assert_eq!(zero.calls("aws secretsmanager put-secret-value"), 0);
    assert!(zero.compose_up_dirs().is_empty());
}
