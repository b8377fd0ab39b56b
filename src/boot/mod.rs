//! The Dify boot configuration: the `dify` block's settings checked and rendered into cloud-init user data that
//! installs `dify-bootstrap` (a real file, `bootstrap.sh`) and the `dify.service` unit. No secret is ever rendered:
//! the instance makes its own, or reads external passwords from Secrets Manager at boot.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The bootstrap script run by `dify.service` at every boot.
pub const BOOTSTRAP_SCRIPT: &str = include_str!("bootstrap.sh");

/// The Dify release used when a stack has no `dify` block.
pub const DEFAULT_DIFY_VERSION: &str = "1.13.3";
/// The Docker Compose plugin release installed when the image has none.
pub const COMPOSE_VERSION: &str = "v2.29.7";
pub const VECTOR_STORES: &[&str] = &["weaviate", "qdrant", "milvus", "pgvector", "opensearch"];

/// Secrets the instance generates on first boot and keeps on the data volume.
pub const GENERATED_SECRETS: &[&str] = &["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD", "SANDBOX_API_KEY", "PLUGIN_DAEMON_KEY", "PLUGIN_DIFY_INNER_API_KEY", "WEAVIATE_API_KEY"];

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExternalDatabase {
    pub host: String,
    pub port: Option<i64>,
    pub username: Option<String>,
    pub database: Option<String>,
    pub password_secret_arn: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExternalRedis {
    pub host: String,
    pub port: Option<i64>,
    pub password_secret_arn: Option<String>,
    pub tls: Option<bool>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct S3Storage {
    pub bucket: String,
    pub region: Option<String>,
}

/// The `dify` block of `dify_ec2_stack`.
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct DifyConfig {
    pub version: String,
    pub url: Option<String>,
    pub vector_store: Option<String>,
    pub upload_limit_mb: Option<i64>,
    pub alb_idle_timeout: Option<i64>,
    pub env: Option<BTreeMap<String, String>>,
    /// `.env` key → Secrets Manager secret ARN, read by the instance at boot.
    pub secret_env: Option<BTreeMap<String, String>>,
    pub image_overrides: Option<BTreeMap<String, String>>,
    pub external_database: Option<ExternalDatabase>,
    pub external_redis: Option<ExternalRedis>,
    pub s3_storage: Option<S3Storage>,
    pub vector_store_url: Option<String>,
}

impl Default for DifyConfig {
    fn default() -> DifyConfig {
        DifyConfig {
            version: DEFAULT_DIFY_VERSION.into(),
            url: None,
            vector_store: None,
            upload_limit_mb: None,
            alb_idle_timeout: None,
            env: None,
            secret_env: None,
            image_overrides: None,
            external_database: None,
            external_redis: None,
            s3_storage: None,
            vector_store_url: None,
        }
    }
}

/// Keys of Dify's `.env` the provider sets itself; `env` may not set them.
pub fn managed_keys() -> Vec<&'static str> {
    let mut keys = vec![
        "CONSOLE_WEB_URL",
        "CONSOLE_API_URL",
        "APP_WEB_URL",
        "APP_API_URL",
        "SERVICE_API_URL",
        "FILES_URL",
        "VECTOR_STORE",
        "UPLOAD_FILE_SIZE_LIMIT",
        "NGINX_CLIENT_MAX_BODY_SIZE",
        "NGINX_KEEPALIVE_TIMEOUT",
        "NGINX_PROXY_READ_TIMEOUT",
        "NGINX_PROXY_SEND_TIMEOUT",
        "DB_HOST",
        "DB_PORT",
        "DB_USERNAME",
        "DB_DATABASE",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_USE_SSL",
        "STORAGE_TYPE",
        "S3_BUCKET_NAME",
        "S3_REGION",
        "S3_USE_AWS_MANAGED_IAM",
        "WEAVIATE_ENDPOINT",
        "QDRANT_URL",
        "MILVUS_URI",
        "POSTGRES_PASSWORD",
        "CODE_EXECUTION_API_KEY",
        "WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS",
    ];
    keys.extend_from_slice(GENERATED_SECRETS);
    keys
}

/// Whether an `.env` key names a secret (SMTP_PASSWORD, S3_SECRET_KEY, SENTRY_DSN, HOSTED_OPENAI_API_KEY,
/// UPSTASH_VECTOR_TOKEN…) by its words, so `env` refuses it and points at `secret_env`. Settings that merely mention
/// tokens (ACCESS_TOKEN_EXPIRE_MINUTES) are not secrets.
pub fn looks_secret(key: &str) -> bool {
    let words: Vec<&str> = key.split('_').collect();
    let last = words.last().copied().unwrap_or_default();
    words.iter().any(|w| matches!(*w, "PASSWORD" | "PASSWD" | "SECRET" | "CREDENTIAL" | "CREDENTIALS" | "DSN"))
        || matches!(last, "KEY" | "TOKEN")
        || words.windows(2).any(|w| matches!(w, ["API" | "ACCESS" | "PRIVATE" | "ACCOUNT", "KEY"]))
}

fn is_env_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_') && !k.starts_with(|ch: char| ch.is_ascii_digit())
}

/// Problems with the settings, each with the attribute (under `dify`) it concerns.
pub fn check(c: &DifyConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let version_ok = !c.version.is_empty() && c.version.chars().all(|ch| ch.is_ascii_alphanumeric() || ".-_".contains(ch));
    if !version_ok {
        problems.push(("version".into(), format!("{:?} is not a release tag such as \"{DEFAULT_DIFY_VERSION}\"", c.version)));
    }
    if let Some(url) = &c.url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(char::is_whitespace) {
            problems.push(("url".into(), format!("{url:?} is not a URL such as \"https://dify.example.com\"")));
        }
    }
    let managed = managed_keys();
    for (k, v) in c.env.iter().flatten() {
        if managed.contains(&k.as_str()) {
            problems.push((
                format!("env[\"{k}\"]"),
                format!("{k} is set by the provider; use the `dify` block's own settings. Keys the provider manages: {}.", managed.join(", ")),
            ));
        } else if !is_env_name(k) {
            problems.push((format!("env[\"{k}\"]"), format!("{k:?} is not an environment variable name (A-Z, 0-9 and _)")));
        } else if looks_secret(k) {
            problems.push((
                format!("env[\"{k}\"]"),
                format!("{k} looks like a secret, and `env` values are stored in Terraform state and the instances' user data. Store it in Secrets Manager and give its ARN as secret_env = {{ {k} = \"arn:aws:secretsmanager:…\" }}: the instances read it at boot."),
            ));
        } else if v.contains('\n') || v.contains('\r') {
            problems.push((format!("env[\"{k}\"]"), "values must be on one line".into()));
        }
    }
    for (k, arn) in c.secret_env.iter().flatten() {
        let at = format!("secret_env[\"{k}\"]");
        if managed.contains(&k.as_str()) {
            problems.push((at, format!("{k} is set by the provider (the instances generate Dify's own secrets); keys the provider manages: {}.", managed.join(", "))));
        } else if !is_env_name(k) {
            problems.push((at, format!("{k:?} is not an environment variable name (A-Z, 0-9 and _)")));
        } else if c.env.as_ref().is_some_and(|e| e.contains_key(k)) {
            problems.push((at, format!("{k} is also in `env`; give it in one place")));
        } else if !(arn.starts_with("arn:") && arn.contains(":secretsmanager:")) || arn.contains(char::is_whitespace) {
            problems.push((at, format!("{arn:?} is not a Secrets Manager secret ARN such as \"arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:dify-smtp\"")));
        }
    }
    for (service, image) in c.image_overrides.iter().flatten() {
        if service.is_empty() || !service.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "_-".contains(ch)) || image.contains(char::is_whitespace) || image.is_empty() {
            problems.push((format!("image_overrides[\"{service}\"]"), format!("give a Compose service name and an image such as \"langgenius/dify-api:{DEFAULT_DIFY_VERSION}\"")));
        }
    }
    if c.vector_store_url.is_some() && !matches!(c.vector_store.as_deref().unwrap_or("weaviate"), "weaviate" | "qdrant" | "milvus") {
        problems.push(("vector_store_url".into(), "an external vector store by URL is supported for weaviate, qdrant and milvus".into()));
    }
    problems
}

/// The `.env` lines the provider sets (no secrets).
pub fn compose_env(c: &DifyConfig) -> BTreeMap<String, String> {
    let mut e = BTreeMap::new();
    if let Some(url) = &c.url {
        let url = url.trim_end_matches('/').to_string();
        for k in ["CONSOLE_WEB_URL", "CONSOLE_API_URL", "APP_WEB_URL", "APP_API_URL", "SERVICE_API_URL", "FILES_URL"] {
            e.insert(k.to_string(), url.clone());
        }
    }
    let store = c.vector_store.clone().unwrap_or_else(|| "weaviate".into());
    e.insert("VECTOR_STORE".into(), store.clone());
    let mb = c.upload_limit_mb.unwrap_or(100);
    e.insert("UPLOAD_FILE_SIZE_LIMIT".into(), mb.to_string());
    e.insert("NGINX_CLIENT_MAX_BODY_SIZE".into(), format!("{mb}M"));
    // nginx keeps connections open longer than the load balancer, so the ALB never reuses one nginx has closed.
    let idle = c.alb_idle_timeout.unwrap_or(600);
    e.insert("NGINX_KEEPALIVE_TIMEOUT".into(), (idle + 5).to_string());
    let proxy = (idle + 5).max(3600);
    e.insert("NGINX_PROXY_READ_TIMEOUT".into(), format!("{proxy}s"));
    e.insert("NGINX_PROXY_SEND_TIMEOUT".into(), format!("{proxy}s"));
    if let Some(db) = &c.external_database {
        e.insert("DB_HOST".into(), db.host.clone());
        e.insert("DB_PORT".into(), db.port.unwrap_or(5432).to_string());
        if let Some(u) = &db.username {
            e.insert("DB_USERNAME".into(), u.clone());
        }
        if let Some(d) = &db.database {
            e.insert("DB_DATABASE".into(), d.clone());
        }
    }
    if let Some(r) = &c.external_redis {
        e.insert("REDIS_HOST".into(), r.host.clone());
        e.insert("REDIS_PORT".into(), r.port.unwrap_or(6379).to_string());
        e.insert("REDIS_USE_SSL".into(), r.tls.unwrap_or(false).to_string());
    }
    if let Some(s3) = &c.s3_storage {
        e.insert("STORAGE_TYPE".into(), "s3".into());
        e.insert("S3_BUCKET_NAME".into(), s3.bucket.clone());
        if let Some(region) = &s3.region {
            e.insert("S3_REGION".into(), region.clone());
        }
        e.insert("S3_USE_AWS_MANAGED_IAM".into(), "true".into());
    }
    if let Some(url) = &c.vector_store_url {
        let key = match store.as_str() {
            "qdrant" => "QDRANT_URL",
            "milvus" => "MILVUS_URI",
            _ => "WEAVIATE_ENDPOINT",
        };
        e.insert(key.into(), url.clone());
    }
    for (k, v) in c.env.iter().flatten() {
        e.insert(k.clone(), v.clone());
    }
    e
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}

const SERVICE_UNIT: &str = "[Unit]
Description=Dify (Docker Compose) with its data on the Dify data volume
Wants=network-online.target
After=network-online.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/dify-bootstrap
ExecStop=/bin/sh -c 'cd /opt/dify/current/docker && docker compose stop'
TimeoutStartSec=1800
TimeoutStopSec=300
[Install]
WantedBy=multi-user.target
";

/// The cloud-config user data for every instance of a stack (each finds its data volume by its own tag).
pub fn render(c: &DifyConfig) -> String {
    let mut settings = format!("DIFY_VERSION={}\nDIFY_COMPOSE_VERSION={}\n", shell_quote(&c.version), shell_quote(COMPOSE_VERSION));
    if let Some(arn) = c.external_database.as_ref().and_then(|d| d.password_secret_arn.as_ref()) {
        settings.push_str(&format!("DIFY_DB_PASSWORD_SECRET_ARN={}\n", shell_quote(arn)));
    }
    if let Some(arn) = c.external_redis.as_ref().and_then(|r| r.password_secret_arn.as_ref()) {
        settings.push_str(&format!("DIFY_REDIS_PASSWORD_SECRET_ARN={}\n", shell_quote(arn)));
    }
    let env: String = compose_env(c).iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    // Only ARNs: the instance reads each value from Secrets Manager at boot.
    let secret_env: String = c.secret_env.iter().flatten().map(|(k, arn)| format!("{k}={arn}\n")).collect();
    let script = base64::engine::general_purpose::STANDARD.encode(BOOTSTRAP_SCRIPT);
    let mut out = String::from("#cloud-config\n# Rendered by terraform-provider-dify (dify_ec2_stack). Holds no secret.\nwrite_files:\n");
    out.push_str(&format!("  - path: /usr/local/sbin/dify-bootstrap\n    permissions: '0755'\n    encoding: b64\n    content: {script}\n"));
    out.push_str(&format!("  - path: /etc/systemd/system/dify.service\n    permissions: '0644'\n    content: |\n{}", indent(SERVICE_UNIT)));
    out.push_str(&format!("  - path: /etc/dify/dify.env\n    permissions: '0644'\n    content: |\n{}", indent(&settings)));
    out.push_str(&format!("  - path: /etc/dify/dify.env.compose\n    permissions: '0644'\n    content: |\n{}", indent(&env)));
    if !secret_env.is_empty() {
        out.push_str(&format!("  - path: /etc/dify/dify.env.secret-env\n    permissions: '0644'\n    content: |\n{}", indent(&secret_env)));
    }
    if let Some(images) = c.image_overrides.as_ref().filter(|m| !m.is_empty()) {
        let services: String = images.iter().map(|(s, i)| format!("  {s}:\n    image: {i}\n")).collect();
        out.push_str(&format!("  - path: /etc/dify/docker-compose.override.yaml\n    permissions: '0644'\n    content: |\n{}", indent(&format!("services:\n{services}"))));
    }
    out.push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, enable, --now, dify.service]\n");
    out
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
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
        for (name, config) in [("default", DifyConfig::default()), ("full", full())] {
            let rendered = render(&config);
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
        let e = compose_env(&full());
        assert_eq!(e["CONSOLE_API_URL"], "https://dify.example.com");
        assert_eq!(e["FILES_URL"], "https://dify.example.com");
        assert_eq!((e["UPLOAD_FILE_SIZE_LIMIT"].as_str(), e["NGINX_CLIENT_MAX_BODY_SIZE"].as_str()), ("200", "200M"));
        assert_eq!(e["NGINX_KEEPALIVE_TIMEOUT"], "605", "above the ALB's 600 s idle timeout");
        assert_eq!(e["DB_HOST"], "db.internal");
        let rendered = render(&full());
        for secret in GENERATED_SECRETS {
            assert!(!rendered.contains(&format!("{secret}=")), "{secret} must not be rendered");
        }
        assert!(rendered.contains("DIFY_DB_PASSWORD_SECRET_ARN='arn:aws:secretsmanager:x:1:secret:db'"));
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
        assert!(render(&c).contains(&format!("SMTP_PASSWORD={arn}")), "the ARN travels, read at boot");
        let bad = DifyConfig { secret_env: Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), "hunter2".to_string()), ("SECRET_KEY".to_string(), arn.to_string())])), ..DifyConfig::default() };
        let problems = check(&bad);
        assert!(problems.iter().any(|(at, msg)| at == "secret_env[\"SMTP_PASSWORD\"]" && msg.contains("not a Secrets Manager secret ARN")), "{problems:?}");
        assert!(problems.iter().any(|(at, _)| at == "secret_env[\"SECRET_KEY\"]"), "{problems:?}");
    }
}
