//! The Dify boot configuration: the `dify` block's settings checked and rendered into cloud-init user data that
//! installs `dify-bootstrap` (a real file, `bootstrap.sh`) and the `dify.service` unit. No secret is ever rendered:
//! the instance makes its own, or reads external passwords from Secrets Manager at boot.

mod check;
mod config;
mod env;
pub mod policy;

pub use check::*;
pub use config::*;
pub use env::*;

use base64::Engine;
use sha2::{Digest, Sha256};

/// The bootstrap script run by `dify.service` at every boot.
pub const BOOTSTRAP_SCRIPT: &str = include_str!("bootstrap.sh");

/// The Dify release used when a stack has no `dify` block. The compose contract fixture
/// (`tests/contract/dify-1.13.3/`) models this release's `docker/` directory.
pub const DEFAULT_DIFY_VERSION: &str = "1.13.3";
/// The Docker Compose plugin release installed when the image has none.
pub const COMPOSE_VERSION: &str = "v2.29.7";
pub const VECTOR_STORES: &[&str] = &["weaviate", "qdrant", "milvus", "pgvector", "opensearch"];
/// Where the api answers inside the compose network: the plugin daemon and the workers fetch files there, never
/// through the load balancer.
pub const INTERNAL_API_URL: &str = "http://api:5001";

/// Every secret an instance may generate on first boot and keep on the data volume (which ones a configuration
/// uses: [`generated_secrets`]).
pub const GENERATED_SECRETS: &[&str] = &[
    "SECRET_KEY",
    "INIT_PASSWORD",
    "DB_PASSWORD",
    "REDIS_PASSWORD",
    "SANDBOX_API_KEY",
    "PLUGIN_DAEMON_KEY",
    "PLUGIN_DIFY_INNER_API_KEY",
    "WEAVIATE_API_KEY",
    "QDRANT_API_KEY",
    "PGVECTOR_PASSWORD",
    "OPENSEARCH_PASSWORD",
];

/// Keys Dify's compose file reads under a second name, and the generated secret each must equal
/// (`alias`, `source`). The instance copies them after generating the secrets.
const SECRET_ALIASES: &[(&str, &str)] = &[
    ("CODE_EXECUTION_API_KEY", "SANDBOX_API_KEY"),
    ("WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS", "WEAVIATE_API_KEY"),
    ("PGVECTOR_POSTGRES_PASSWORD", "PGVECTOR_PASSWORD"),
    ("OPENSEARCH_INITIAL_ADMIN_PASSWORD", "OPENSEARCH_PASSWORD"),
];

/// Keys the instance derives at boot from the Redis settings and password (one password, one host, one TLS setting
/// for the cache and the Celery broker).
const BROKER_KEYS: &[&str] = &["CELERY_BROKER_URL", "BROKER_USE_SSL"];

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}

// Ordered after Docker, so at shutdown Compose stops before Docker does, and after the data volume's mount.
// TimeoutStartSec: 30 min for Docker, the release, the images and `up`, plus the hour dify-bootstrap may wait for its
// data volume (a replacement prepared while the old instance still serves).
const SERVICE_UNIT: &str = "[Unit]
Description=Dify (Docker Compose) with its data on the Dify data volume
Wants=network-online.target docker.service
After=network-online.target docker.service
RequiresMountsFor=/opt/dify-data
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/dify-bootstrap
ExecStop=/bin/sh -c 'cd /opt/dify/current/docker && docker compose stop'
TimeoutStartSec=5400
TimeoutStopSec=300
[Install]
WantedBy=multi-user.target
";

/// A drop-in for docker.service: Docker restarts `restart: always` containers as soon as it starts, so it must wait
/// for the data volume's mount (in fstab once the first boot has mounted it), or a database would start on the root
/// disk and its data be hidden under the mount.
const DOCKER_DROP_IN: &str = "[Unit]
RequiresMountsFor=/opt/dify-data
";

/// Grows the data volume's filesystem while the instance runs: EBS reports a volume grown by `size_gb` to the kernel,
/// which sends a block "change" event with RESIZE=1; the service is a no-op unless the data volume is mounted.
const GROW_UNIT: &str = "[Unit]
Description=Grow the Dify data volume's filesystem to the volume's size
ConditionPathIsMountPoint=/opt/dify-data
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/dify-bootstrap grow
";
const GROW_RULE: &str = "ACTION==\"change\", SUBSYSTEM==\"block\", ENV{RESIZE}==\"1\", RUN+=\"/usr/bin/systemctl --no-block start dify-grow.service\"
";

/// The Secrets Manager secret (by name, known at plan) holding the application secrets every instance of a
/// multi-instance stack shares: a JSON object, secret name -> value, filled by the instance with `dify:index` 0.
pub fn shared_secret_name(stack: &str) -> String {
    format!("dify/{stack}/app-secrets")
}

/// The cloud-config user data for every instance of a stack (each finds its data volume by its own tag).
/// `shared_secrets`: the name of the stack's shared secret (`shared_secret_name`) when its instances share secrets.
pub fn render(c: &DifyConfig, app_port: i64, shared_secrets: Option<&str>) -> String {
    let mut settings = format!("DIFY_VERSION={}\nDIFY_COMPOSE_VERSION={}\n", shell_quote(&c.version), shell_quote(COMPOSE_VERSION));
    if let Some(name) = shared_secrets {
        settings.push_str(&format!("DIFY_SHARED_SECRETS={}\n", shell_quote(name)));
    }
    settings.push_str(&format!("DIFY_GENERATED_SECRETS={}\n", shell_quote(&generated_secrets(c).join(" "))));
    let aliases: Vec<String> = secret_aliases(c).iter().map(|(alias, source)| format!("{alias}={source}")).collect();
    settings.push_str(&format!("DIFY_SECRET_ALIASES={}\n", shell_quote(&aliases.join(" "))));
    let secrets = [
        ("DB", c.external_database.as_ref().map(|d| (&d.password_secret_arn, &d.password_secret_key))),
        ("REDIS", c.external_redis.as_ref().map(|r| (&r.password_secret_arn, &r.password_secret_key))),
    ];
    for (service, secret) in secrets {
        if let Some((Some(arn), key)) = secret {
            settings.push_str(&format!("DIFY_{service}_PASSWORD_SECRET_ARN={}\n", shell_quote(arn)));
            if let Some(key) = key {
                settings.push_str(&format!("DIFY_{service}_PASSWORD_SECRET_KEY={}\n", shell_quote(key)));
            }
        }
    }
    // Where the release, the Compose plugin and the images come from, when not from GitHub and Docker Hub.
    let sources = [
        ("DIFY_RELEASE_URL", &c.release_url),
        ("DIFY_RELEASE_SHA256", &c.release_sha256.as_ref().map(|s| s.to_ascii_lowercase())),
        ("DIFY_COMPOSE_PLUGIN_URL", &c.compose_plugin_url),
        ("DIFY_COMPOSE_PLUGIN_SHA256", &c.compose_plugin_sha256.as_ref().map(|s| s.to_ascii_lowercase())),
        ("DIFY_IMAGE_REGISTRY", &c.image_registry),
    ];
    for (name, value) in sources {
        if let Some(value) = value {
            settings.push_str(&format!("{name}={}\n", shell_quote(value)));
        }
    }
    let env: String = compose_env(c, app_port).iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    // Only ARNs: the instance reads each value from Secrets Manager at boot.
    let secret_env: String = c.secret_env.iter().flatten().map(|(k, arn)| format!("{k}={arn}\n")).collect();
    let script = base64::engine::general_purpose::STANDARD.encode(BOOTSTRAP_SCRIPT);
    let mut out = String::from("#cloud-config\n# Rendered by terraform-provider-dify (dify_ec2_stack). Holds no secret.\nwrite_files:\n");
    out.push_str(&format!("  - path: /usr/local/sbin/dify-bootstrap\n    permissions: '0755'\n    encoding: b64\n    content: {script}\n"));
    out.push_str(&format!("  - path: /etc/systemd/system/dify.service\n    permissions: '0644'\n    content: |\n{}", indent(SERVICE_UNIT)));
    out.push_str(&format!("  - path: /etc/systemd/system/docker.service.d/10-dify-data.conf\n    permissions: '0644'\n    content: |\n{}", indent(DOCKER_DROP_IN)));
    out.push_str(&format!("  - path: /etc/systemd/system/dify-grow.service\n    permissions: '0644'\n    content: |\n{}", indent(GROW_UNIT)));
    out.push_str(&format!("  - path: /etc/udev/rules.d/90-dify-grow.rules\n    permissions: '0644'\n    content: |\n{}", indent(GROW_RULE)));
    out.push_str(&format!("  - path: /etc/dify/dify.env\n    permissions: '0644'\n    content: |\n{}", indent(&settings)));
    out.push_str(&format!("  - path: /etc/dify/dify.env.compose\n    permissions: '0644'\n    content: |\n{}", indent(&env)));
    if !secret_env.is_empty() {
        out.push_str(&format!("  - path: /etc/dify/dify.env.secret-env\n    permissions: '0644'\n    content: |\n{}", indent(&secret_env)));
    }
    if let Some(override_file) = compose_override(c) {
        out.push_str(&format!("  - path: /etc/dify/docker-compose.override.yaml\n    permissions: '0644'\n    content: |\n{}", indent(&override_file)));
    }
    out.push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [udevadm, control, --reload]\n  - [systemctl, enable, --now, dify.service]\n");
    out
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn full() -> DifyConfig {
        DifyConfig {
            url: Some("https://dify.example.com/".into()),
            upload_limit_mb: Some(200),
            env: Some(BTreeMap::from([("LOG_LEVEL".to_string(), "INFO".to_string())])),
            secret_env: Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), "arn:aws:secretsmanager:x:1:secret:smtp".to_string())])),
            image_overrides: Some(BTreeMap::from([("sandbox".to_string(), "langgenius/dify-sandbox:0.2.12".to_string())])),
            external_database: Some(ExternalDatabase { host: "db.internal".into(), username: Some("dify".into()), password_secret_arn: Some("arn:aws:secretsmanager:x:1:secret:db".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    /// Golden files: the rendered user data of representative configurations, compared byte for byte.
    /// `DIFY_WRITE_GOLDEN=1 cargo test --lib boot` rewrites them after a deliberate change.
    #[test]
    fn rendering_matches_the_golden_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        // shared-secrets: an instance of a multi-instance stack (the VM twin's scenario k boots it).
        let shared = shared_secret_name("prd");
        let cases = [("default", DifyConfig::default(), 80, None), ("full", full(), 8080, None), ("closed-network", closed_network(), 80, None), ("shared-secrets", DifyConfig::default(), 80, Some(shared.as_str()))];
        for (name, config, port, shared_secrets) in cases {
            let rendered = render(&config, port, shared_secrets);
            let file = dir.join(format!("user-data-{name}.yaml"));
            if std::env::var("DIFY_WRITE_GOLDEN").is_ok() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, &rendered).unwrap();
            }
            assert_eq!(rendered, std::fs::read_to_string(&file).unwrap_or_default(), "{name}: rendered user data changed; review and rewrite the golden file");
        }
    }

    #[test]
    fn settings_are_consistent_and_hold_no_secret() {
        let e = compose_env(&full(), 8080);
        assert_eq!(e["CONSOLE_API_URL"], "https://dify.example.com");
        assert_eq!(e["FILES_URL"], "https://dify.example.com");
        assert_eq!((e["UPLOAD_FILE_SIZE_LIMIT"].as_str(), e["NGINX_CLIENT_MAX_BODY_SIZE"].as_str()), ("200", "200M"));
        assert_eq!(e["NGINX_KEEPALIVE_TIMEOUT"], "605", "above the ALB's 600 s idle timeout");
        assert_eq!(e["DB_HOST"], "db.internal");
        assert_eq!(e["EXPOSE_NGINX_PORT"], "8080");
        assert_eq!(e["COMPOSE_PROFILES"], "weaviate", "no bundled PostgreSQL beside an external database");
        assert_eq!(e["INTERNAL_FILES_URL"], INTERNAL_API_URL);
        let rendered = render(&full(), 8080, None);
        for secret in GENERATED_SECRETS {
            assert!(!rendered.contains(&format!("{secret}=")), "{secret} must not be rendered");
        }
        assert!(rendered.contains("DIFY_DB_PASSWORD_SECRET_ARN='arn:aws:secretsmanager:x:1:secret:db'"));
    }

    #[test]
    fn a_shared_secret_is_named_in_the_settings_by_name_only_when_given() {
        let name = shared_secret_name("prd");
        assert_eq!(name, "dify/prd/app-secrets");
        assert!(render(&full(), 80, Some(&name)).contains("DIFY_SHARED_SECRETS='dify/prd/app-secrets'\n"));
        assert!(!render(&full(), 80, None).contains("DIFY_SHARED_SECRETS"));
    }

    #[test]
    fn managed_keys_and_bad_values_are_refused_by_name() {
        let mut c = DifyConfig::default();
        c.env = Some(BTreeMap::from([("SECRET_KEY".to_string(), "x".to_string()), ("bad-key".to_string(), "y".to_string())]));
        c.version = "main branch".into();
        let problems = check(&c);
        assert!(problems.iter().any(|(at, msg)| at == "env[\"SECRET_KEY\"]" && msg.contains("CONSOLE_WEB_URL")));
        assert!(problems.iter().any(|(at, _)| at == "env[\"bad-key\"]"));
        assert!(problems.iter().any(|(at, _)| at == "version"));
    }

    #[test]
    fn secret_looking_env_keys_are_sent_to_secret_env_which_renders_only_arns() {
        for k in ["SMTP_PASSWORD", "S3_SECRET_KEY", "SENTRY_DSN", "HOSTED_OPENAI_API_KEY", "UPSTASH_VECTOR_TOKEN", "ALIYUN_OSS_ACCESS_KEY", "NOTION_CLIENT_SECRET", "INNER_API_KEY_FOR_PLUGIN"] {
            assert!(looks_secret(k), "{k}");
        }
        for k in ["ACCESS_TOKEN_EXPIRE_MINUTES", "REFRESH_TOKEN_EXPIRE_DAYS", "MAIL_TYPE", "LOG_LEVEL", "KEYWORD_DATA_SOURCE_TYPE", "INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH"] {
            assert!(!looks_secret(k), "{k}");
        }
        let mut c = DifyConfig::default();
        c.env = Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), "hunter2".to_string())]));
        let problems = check(&c);
        assert!(problems.iter().any(|(at, msg)| at == "env[\"SMTP_PASSWORD\"]" && msg.contains("secret_env")), "{problems:?}");

        let arn = "arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:smtp";
        let c = DifyConfig { secret_env: Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), arn.to_string())])), ..DifyConfig::default() };
        assert!(check(&c).is_empty(), "{:?}", check(&c));
        assert!(render(&c, 80, None).contains(&format!("SMTP_PASSWORD={arn}")), "the ARN travels, read at boot");
        let bad = DifyConfig { secret_env: Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), "hunter2".to_string()), ("SECRET_KEY".to_string(), arn.to_string())])), ..DifyConfig::default() };
        let problems = check(&bad);
        assert!(problems.iter().any(|(at, msg)| at == "secret_env[\"SMTP_PASSWORD\"]" && msg.contains("not a Secrets Manager secret ARN")), "{problems:?}");
        assert!(problems.iter().any(|(at, _)| at == "secret_env[\"SECRET_KEY\"]"), "{problems:?}");
    }

    #[test]
    fn each_configuration_generates_the_secrets_of_what_it_runs_and_no_other() {
        let default = generated_secrets(&DifyConfig::default());
        for name in ["SECRET_KEY", "INIT_PASSWORD", "DB_PASSWORD", "REDIS_PASSWORD", "WEAVIATE_API_KEY"] {
            assert!(default.contains(&name), "{name}");
        }
        let shared = DifyConfig {
            external_database: Some(ExternalDatabase { host: "db".into(), ..Default::default() }),
            external_redis: Some(ExternalRedis { host: "redis".into(), ..Default::default() }),
            vector_store_url: Some("https://weaviate.internal".into()),
            ..DifyConfig::default()
        };
        let generated = generated_secrets(&shared);
        for name in ["DB_PASSWORD", "REDIS_PASSWORD", "WEAVIATE_API_KEY"] {
            assert!(!generated.contains(&name), "{name} belongs to an external service");
        }
        assert_eq!(compose_profiles(&shared), "", "nothing bundled runs");
        // An external weaviate's key is the user's to give.
        let with_key = DifyConfig { secret_env: Some(BTreeMap::from([("WEAVIATE_API_KEY".to_string(), "arn:aws:secretsmanager:x:1:secret:w".to_string())])), ..shared.clone() };
        assert!(check(&with_key).is_empty(), "{:?}", check(&with_key));
        let local = DifyConfig { secret_env: with_key.secret_env.clone(), ..DifyConfig::default() };
        assert!(check(&local).iter().any(|(at, _)| at == "secret_env[\"WEAVIATE_API_KEY\"]"), "the bundled weaviate's key is generated");
        let qdrant = DifyConfig { vector_store: Some("qdrant".into()), ..DifyConfig::default() };
        assert!(generated_secrets(&qdrant).contains(&"QDRANT_API_KEY"));
        assert_eq!(compose_profiles(&qdrant), "qdrant,postgresql");
    }

    #[test]
    fn an_external_redis_leaves_the_bundled_one_out_and_stores_on_their_own_network_are_joined() {
        let c = DifyConfig { external_redis: Some(ExternalRedis { host: "r".into(), ..Default::default() }), vector_store: Some("milvus".into()), ..DifyConfig::default() };
        let o = compose_override(&c).unwrap();
        assert!(o.contains("  redis:\n    command: [\"redis-server\"]\n    profiles: [\"bundled-redis-unused\"]"), "{o}");
        assert!(o.contains("REDIS_PASSWORD: \"\""), "{o}");
        assert!(o.contains("required: false") && o.contains("\"milvus\"]"), "{o}");
        assert!(compose_override(&DifyConfig::default()).is_none());
        assert_eq!(compose_env(&c, 80)["REDIS_PASSWORD"], "", "a password-less Redis gets no password");
    }

    #[test]
    fn a_json_key_needs_its_secret_and_plugin_database_its_own_name() {
        let c = DifyConfig {
            external_database: Some(ExternalDatabase { host: "db".into(), database: Some("dify".into()), plugin_database: Some("dify".into()), password_secret_key: Some("password".into()), ..Default::default() }),
            ..DifyConfig::default()
        };
        let problems = check(&c);
        assert!(problems.iter().any(|(at, _)| at == "external_database.password_secret_key"), "{problems:?}");
        assert!(problems.iter().any(|(at, _)| at == "external_database.plugin_database"), "{problems:?}");
    }

    fn closed_network() -> DifyConfig {
        DifyConfig {
            cors_allow_origins: Some(vec!["https://main.d1abc.amplifyapp.com".into(), "http://localhost:3000".into()]),
            image_registry: Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub".into()),
            release_url: Some("s3://dify-artifacts/dify-1.13.3-docker.tar.gz".into()),
            release_sha256: Some("AB".repeat(32)),
            compose_plugin_url: Some("s3://dify-artifacts/docker-compose-linux-x86_64".into()),
            compose_plugin_sha256: Some("cd".repeat(32)),
            ..DifyConfig::default()
        }
    }

    #[test]
    fn cors_origins_reach_both_of_dify_s_keys_and_env_cannot_fight_them() {
        let c = closed_network();
        assert!(check(&c).is_empty(), "{:?}", check(&c));
        let e = compose_env(&c, 80);
        for k in ["WEB_API_CORS_ALLOW_ORIGINS", "CONSOLE_CORS_ALLOW_ORIGINS"] {
            assert_eq!(e[k], "https://main.d1abc.amplifyapp.com,http://localhost:3000", "{k}");
        }
        assert!(!compose_env(&DifyConfig::default(), 80).contains_key("WEB_API_CORS_ALLOW_ORIGINS"), "unset: Dify's default stays");
        let fight = DifyConfig { env: Some(BTreeMap::from([("CONSOLE_CORS_ALLOW_ORIGINS".to_string(), "*".to_string())])), ..DifyConfig::default() };
        let problems = check(&fight);
        assert!(problems.iter().any(|(at, msg)| at == "env[\"CONSOLE_CORS_ALLOW_ORIGINS\"]" && msg.contains("dify.cors_allow_origins")), "{problems:?}");
        let all = DifyConfig { cors_allow_origins: Some(vec!["*".into()]), ..DifyConfig::default() };
        assert!(check(&all).is_empty(), "{:?}", check(&all));
    }

    #[test]
    fn an_origin_a_browser_would_never_send_is_refused_with_the_fix() {
        for (origin, hint) in [
            ("https://app.example.com/", "drop \"/\""),
            ("https://app.example.com/login", "drop \"/login\""),
            ("app.example.com", "such as"),
            ("ftp://app.example.com", "such as"),
            ("https://app.example.com:99999", "such as"),
            ("https://", "such as"),
            ("https://a.example.com,https://b.example.com", "one origin per list element"),
        ] {
            let c = DifyConfig { cors_allow_origins: Some(vec![origin.into()]), ..DifyConfig::default() };
            let problems = check(&c);
            assert!(problems.iter().any(|(at, msg)| at == "cors_allow_origins" && msg.contains(hint)), "{origin}: {problems:?}");
        }
        let mixed = DifyConfig { cors_allow_origins: Some(vec!["*".into(), "https://a.example.com".into()]), ..DifyConfig::default() };
        assert!(check(&mixed).iter().any(|(_, msg)| msg.contains("give it alone")));
        let empty = DifyConfig { cors_allow_origins: Some(vec![]), ..DifyConfig::default() };
        assert!(check(&empty).iter().any(|(at, _)| at == "cors_allow_origins"));
    }

    #[test]
    fn a_release_url_needs_its_checksum_and_a_checksum_its_url() {
        let no_sum = DifyConfig { release_url: Some("https://artifacts.internal/dify.tar.gz".into()), ..DifyConfig::default() };
        assert!(check(&no_sum).iter().any(|(at, msg)| at == "release_sha256" && msg.contains("sha256sum")), "{:?}", check(&no_sum));
        let bad_sum = DifyConfig { release_sha256: Some("abc123".into()), ..no_sum.clone() };
        assert!(check(&bad_sum).iter().any(|(at, msg)| at == "release_sha256" && msg.contains("64 characters")), "{:?}", check(&bad_sum));
        let lone_sum = DifyConfig { compose_plugin_sha256: Some("a".repeat(64)), ..DifyConfig::default() };
        assert!(check(&lone_sum).iter().any(|(at, msg)| at == "compose_plugin_sha256" && msg.contains("compose_plugin_url")), "{:?}", check(&lone_sum));
        for url in ["http://artifacts.internal/dify.tar.gz", "s3://bucket-only", "git@github.com:langgenius/dify.git", "https://a b"] {
            let c = DifyConfig { release_url: Some(url.into()), release_sha256: Some("a".repeat(64)), ..DifyConfig::default() };
            assert!(check(&c).iter().any(|(at, _)| at == "release_url"), "{url}: {:?}", check(&c));
        }
        let rendered = render(&closed_network(), 80, None);
        assert!(rendered.contains(&format!("DIFY_RELEASE_SHA256='{}'", "ab".repeat(32))), "the checksum is rendered as sha256sum prints it");
        assert!(rendered.contains("DIFY_RELEASE_URL='s3://dify-artifacts/dify-1.13.3-docker.tar.gz'"));
        assert!(rendered.contains("DIFY_COMPOSE_PLUGIN_URL='s3://dify-artifacts/docker-compose-linux-x86_64'"));
        assert!(!render(&DifyConfig::default(), 80, None).contains("DIFY_RELEASE_URL"), "no release_url: the GitHub clone");
    }

    #[test]
    fn an_image_registry_is_a_host_with_an_optional_lower_case_path() {
        for ok in ["123456789012.dkr.ecr.ap-northeast-1.amazonaws.com", "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub", "registry.internal:5000/dify/mirror", "localhost:5000"] {
            let c = DifyConfig { image_registry: Some(ok.into()), ..DifyConfig::default() };
            assert!(check(&c).is_empty(), "{ok}: {:?}", check(&c));
            assert!(render(&c, 80, None).contains(&format!("DIFY_IMAGE_REGISTRY='{ok}'")));
        }
        for (bad, hint) in [("https://registry.internal", "without a scheme"), ("mirror/dify", "Docker Hub namespace"), ("registry.internal/Dify", "lower-case"), ("registry.internal/dify/", "trailing"), ("registry.internal/dify:1.0", "lower-case")] {
            let c = DifyConfig { image_registry: Some(bad.into()), ..DifyConfig::default() };
            assert!(check(&c).iter().any(|(at, msg)| at == "image_registry" && msg.contains(hint)), "{bad}: {:?}", check(&c));
        }
    }

    #[test]
    fn the_registry_table_names_every_key_the_instance_writes() {
        let everything = DifyConfig {
            url: Some("https://d".into()),
            external_database: Some(ExternalDatabase { host: "db".into(), username: Some("u".into()), database: Some("d".into()), ..Default::default() }),
            external_redis: Some(ExternalRedis { host: "r".into(), ..Default::default() }),
            s3_storage: Some(S3Storage { bucket: "b".into(), region: Some("r".into()) }),
            vector_store_url: Some("https://w".into()),
            cors_allow_origins: Some(vec!["https://a".into()]),
            ..DifyConfig::default()
        };
        let mut keys: Vec<String> = compose_env(&everything, 80).into_keys().collect();
        for store in VECTOR_STORES {
            let c = DifyConfig { vector_store: Some(store.to_string()), ..DifyConfig::default() };
            keys.extend(compose_env(&c, 80).into_keys());
            keys.extend(generated_secrets(&c).iter().map(|k| k.to_string()));
            keys.extend(secret_aliases(&c).iter().map(|(alias, _)| alias.to_string()));
        }
        keys.extend(BROKER_KEYS.iter().map(|k| k.to_string()));
        keys.push("COMPOSE_FILE".into());
        keys.extend(GENERATED_SECRETS.iter().map(|k| k.to_string()));
        for key in keys {
            assert!(ENV_KEYS_DOC.contains(&format!("`{key}`")), "{key} is written but not in ENV_KEYS_DOC");
        }
    }
}
