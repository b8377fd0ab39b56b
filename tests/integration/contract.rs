//! The compose contract: the user data the provider renders for a configuration, run through its real
//! `dify-bootstrap` up to `docker compose up` (in the sandbox), then resolved by real Docker Compose v2
//! (`docker-compose config`, no daemon) against our model of Dify's `docker/` directory (`tests/contract/dify-*`).
//! Every assertion is on the resolved services Docker would start: what Dify will read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use terraform_provider_dify::boot::{self, DifyConfig, ExternalDatabase, ExternalRedis, S3Storage};

use crate::harness::venv;
use crate::sandbox::BootSandbox;

/// Secrets Dify's compose files ship as defaults: public, so none may guard anything that runs.
const PUBLIC_DEFAULTS: &[&str] = &[
    "difyai123456",
    "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U",
    "dify-sandbox",
    "lYkiYYT6owG+71oLerGzA7GXCgOT++6ovaezWAjpCjf+Sjc3ZtU+qUEi",
    "QaHbTe77CtuXmsfyhR7+vRjI/+XbV1AaFy691iy+kGDv2Jvy0/eAh8Y1",
    "WVF5YThaHlkYwhGUSmCRgsX3tD5ngdN8pkih",
    "Qazwsxedc!@#123",
];

/// The settings of vector stores: Dify's shared environment carries every store's, and only those of a store whose
/// server runs in the project guard anything here (an external store's key is checked by the test that sets it).
const STORE_PREFIXES: &[(&str, &str)] = &[
    ("weaviate", "WEAVIATE_"),
    ("qdrant", "QDRANT_"),
    ("milvus", "MILVUS_"),
    ("pgvector", "PGVECTOR_"),
    ("opensearch", "OPENSEARCH_"),
    ("oceanbase", "OCEANBASE_"),
    ("seekdb", "SEEKDB_"),
    ("myscale", "MYSCALE_"),
    ("couchbase", "COUCHBASE_"),
    ("hologres", "HOLOGRES_"),
    ("vastbase", "VASTBASE_"),
    ("pgvecto-rs", "PGVECTO_RS_"),
    ("analyticdb", "ANALYTICDB_"),
    ("tidb", "TIDB_"),
    ("matrixone", "MATRIXONE_"),
    ("chroma", "CHROMA_"),
    ("oracle", "ORACLE_"),
    ("iris", "IRIS_"),
    ("elasticsearch", "ELASTICSEARCH_"),
    ("opengauss", "OPENGAUSS_"),
    ("lindorm", "LINDORM_"),
    ("baidu", "BAIDU_VECTOR_"),
    ("upstash", "UPSTASH_VECTOR_"),
    ("tablestore", "TABLESTORE_"),
    ("clickzetta", "CLICKZETTA_"),
    ("huawei", "HUAWEI_CLOUD_"),
    ("tencent", "TENCENT_VECTOR_DB_"),
    ("alibabacloud_mysql", "ALIBABACLOUD_MYSQL_"),
    ("relyt", "RELYT_"),
];

/// Services that keep data, each with the path its data lives at in the container.
const STATEFUL: &[(&str, &str)] = &[
    ("db_postgres", "/var/lib/postgresql/data"),
    ("redis", "/data"),
    ("api", "/app/api/storage"),
    ("worker", "/app/api/storage"),
    ("plugin_daemon", "/app/storage"),
    ("weaviate", "/var/lib/weaviate"),
    ("qdrant", "/qdrant/storage"),
    ("pgvector", "/var/lib/postgresql/data"),
    ("milvus-standalone", "/var/lib/milvus"),
    ("etcd", "/etcd"),
    ("minio", "/minio_data"),
    ("opensearch", "/usr/share/opensearch/data"),
];

/// The services every configuration runs.
const CORE: &[&str] = &["init_permissions", "api", "worker", "worker_beat", "web", "sandbox", "plugin_daemon", "ssrf_proxy", "nginx"];

/// A Compose project as Docker Compose v2 resolved it.
pub(crate) struct Resolved {
    json: serde_json::Value,
}

impl Resolved {
    pub(crate) fn of(project: &Path) -> Resolved {
        let compose = venv().join("bin/docker-compose");
        assert!(compose.exists(), "{} is missing: run `make venv` (make test does)", compose.display());
        let out = Command::new(&compose)
            .args(["config", "--format", "json"])
            .current_dir(project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", project)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("docker-compose config printed no project ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        Resolved { json }
    }

    fn service(&self, name: &str) -> &serde_json::Value {
        let s = &self.json["services"][name];
        assert!(s.is_object(), "service {name} is not running; running: {:?}", self.services());
        s
    }

    fn services(&self) -> BTreeSet<String> {
        self.json["services"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The environment a service's container gets (`config` writes a literal `$` as `$$`).
    fn env(&self, service: &str) -> BTreeMap<String, String> {
        let env = self.service(service)["environment"].as_object().cloned().unwrap_or_default();
        env.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().replace("$$", "$"))).collect()
    }

    pub(crate) fn var(&self, service: &str, key: &str) -> String {
        self.env(service).get(key).cloned().unwrap_or_else(|| panic!("{service} has no {key}"))
    }

    fn command(&self, service: &str) -> Vec<String> {
        let c = &self.service(service)["command"];
        c.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().replace("$$", "$")).collect()).unwrap_or_default()
    }

    fn image(&self, service: &str) -> String {
        self.service(service)["image"].as_str().unwrap_or_default().to_string()
    }

    fn networks(&self, service: &str) -> BTreeSet<String> {
        self.service(service)["networks"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// (source, target) of each bind mount.
    fn binds(&self, service: &str) -> Vec<(String, String)> {
        let volumes = self.service(service)["volumes"].as_array().cloned().unwrap_or_default();
        volumes.iter().filter(|v| v["type"] == "bind").map(|v| (v["source"].as_str().unwrap_or_default().to_string(), v["target"].as_str().unwrap_or_default().to_string())).collect()
    }

    /// (published, target) ports.
    fn ports(&self, service: &str) -> Vec<(String, u64)> {
        let ports = self.service(service)["ports"].as_array().cloned().unwrap_or_default();
        ports.iter().map(|p| (p["published"].as_str().unwrap_or_default().to_string(), p["target"].as_u64().unwrap_or_default())).collect()
    }
}

/// A path with its symbolic links resolved, for paths whose tail does not exist yet.
fn real_path(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut tail = Vec::new();
    while !existing.exists() {
        tail.push(existing.file_name().unwrap().to_owned());
        existing.pop();
    }
    let mut real = existing.canonicalize().unwrap();
    real.extend(tail.iter().rev());
    real
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// (password, host:port/db, tls) of a Celery broker URL.
fn broker(url: &str) -> (String, String, bool) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, address) = rest.rsplit_once('@').map(|(a, h)| (Some(a), h)).unwrap_or((None, rest));
    let password = auth.map(|a| percent_decode(a.trim_start_matches(':'))).unwrap_or_default();
    (password, address.to_string(), scheme == "rediss")
}

/// A configuration booted through its rendered user data, and the Compose project its bootstrap left behind.
pub(crate) struct Booted {
    pub(crate) sandbox: BootSandbox,
    pub(crate) resolved: Resolved,
    pub(crate) config: DifyConfig,
    pub(crate) app_port: i64,
}

impl Booted {
    fn project(&self) -> PathBuf {
        self.sandbox.compose_up_dirs().last().cloned().expect("docker compose up ran")
    }
}

fn boot_with(config: DifyConfig, app_port: i64, secrets: &[(&str, &str)]) -> Booted {
    let sandbox = BootSandbox::new(&boot::render(&config, app_port, None));
    sandbox.device("sdf");
    for (name, value) in secrets {
        sandbox.secret(name, value);
    }
    let out = sandbox.boot("vol-0abc");
    assert!(out.status.success(), "dify-bootstrap failed:\n{}", sandbox.log());
    let project = sandbox.compose_up_dirs().last().cloned().expect("docker compose up ran");
    let resolved = Resolved::of(&project);
    Booted { sandbox, resolved, config, app_port }
}

fn boot_config(config: DifyConfig) -> Booted {
    boot_with(config, 80, &[])
}

/// The services a configuration implies: the core, the bundled stores it keeps, and nothing else.
fn expected_services(c: &DifyConfig) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = CORE.iter().map(|s| s.to_string()).collect();
    if c.external_database.is_none() {
        s.insert("db_postgres".into());
    }
    if c.external_redis.is_none() {
        s.insert("redis".into());
    }
    if c.local_vector_store() {
        let store: &[&str] = match c.vector_store() {
            "milvus" => &["etcd", "minio", "milvus-standalone"],
            "opensearch" => &["opensearch", "opensearch-dashboards"],
            other => &[other][..],
        };
        s.extend(store.iter().map(|x| x.to_string()));
    }
    s
}

/// The service a host setting names, when it is a service of the project.
fn service_named(r: &Resolved, host: &str) -> Option<String> {
    r.services().into_iter().find(|s| s == host)
}

/// Everything a working Dify needs from the resolved project, whatever the configuration.
pub(crate) fn assert_works(b: &Booted) {
    let (r, c) = (&b.resolved, &b.config);
    let store = c.vector_store();

    // The running services are exactly those the configuration implies.
    assert_eq!(r.services(), expected_services(c), "running services");

    // No public default secret guards anything that runs.
    for service in r.services() {
        let mut texts: Vec<(String, String)> = r.env(&service).into_iter().collect();
        texts.extend(r.command(&service).into_iter().map(|c| ("command".to_string(), c)));
        for (key, value) in texts {
            // The settings of a store whose server is not in the project are read by no one that runs here.
            let running_store = c.local_vector_store().then_some(store);
            if STORE_PREFIXES.iter().any(|(name, prefix)| key.starts_with(prefix) && Some(*name) != running_store) {
                continue;
            }
            for default in PUBLIC_DEFAULTS {
                assert!(!value.contains(default), "{service}: {key} holds Dify's public default {default:?}");
            }
        }
    }
    for key in ["SECRET_KEY", "INIT_PASSWORD", "PLUGIN_DAEMON_KEY", "INNER_API_KEY_FOR_PLUGIN", "CODE_EXECUTION_API_KEY"] {
        assert!(r.var("api", key).len() >= 16, "api {key} is a generated secret");
    }

    // One value for each secret two services share.
    let pairs = [
        (("api", "PLUGIN_DAEMON_KEY"), ("plugin_daemon", "SERVER_KEY")),
        (("api", "INNER_API_KEY_FOR_PLUGIN"), ("plugin_daemon", "DIFY_INNER_API_KEY")),
        (("api", "CODE_EXECUTION_API_KEY"), ("sandbox", "API_KEY")),
        (("api", "SECRET_KEY"), ("worker", "SECRET_KEY")),
        (("api", "DB_PASSWORD"), ("worker", "DB_PASSWORD")),
        (("api", "DB_PASSWORD"), ("plugin_daemon", "DB_PASSWORD")),
    ];
    for ((a, ak), (b_, bk)) in pairs {
        assert_eq!(r.var(a, ak), r.var(b_, bk), "{a} {ak} = {b_} {bk}");
    }
    if c.external_database.is_none() {
        assert_eq!(r.var("db_postgres", "POSTGRES_PASSWORD"), r.var("api", "DB_PASSWORD"), "one database password");
    }
    if c.local_vector_store() {
        let store_pair = match store {
            "weaviate" => Some(("weaviate", "AUTHENTICATION_APIKEY_ALLOWED_KEYS", "WEAVIATE_API_KEY")),
            "qdrant" => Some(("qdrant", "QDRANT_API_KEY", "QDRANT_API_KEY")),
            "pgvector" => Some(("pgvector", "POSTGRES_PASSWORD", "PGVECTOR_PASSWORD")),
            "opensearch" => Some(("opensearch", "OPENSEARCH_INITIAL_ADMIN_PASSWORD", "OPENSEARCH_PASSWORD")),
            _ => None,
        };
        if let Some((service, server_key, api_key)) = store_pair {
            assert_eq!(r.var(service, server_key), r.var("api", api_key), "the api's {api_key} opens {service}");
        }
    }

    // One Redis password: the server's, the cache's and the Celery broker's.
    for service in ["api", "worker", "worker_beat"] {
        let env = r.env(service);
        let (password, address, tls) = broker(&env["CELERY_BROKER_URL"]);
        assert_eq!(password, env["REDIS_PASSWORD"], "{service}: the broker's password is the cache's");
        assert_eq!(address, format!("{}:{}/1", env["REDIS_HOST"], env["REDIS_PORT"]), "{service}: the broker is the cache's server");
        assert_eq!(tls.to_string(), env["REDIS_USE_SSL"], "{service}: the broker uses TLS exactly when the cache does");
        assert_eq!(env["BROKER_USE_SSL"], env["REDIS_USE_SSL"], "{service}: BROKER_USE_SSL");
    }
    if c.external_redis.is_none() {
        let command = r.command("redis");
        let at = command.iter().position(|a| a == "--requirepass").expect("redis runs with --requirepass");
        assert_eq!(command[at + 1], r.var("api", "REDIS_PASSWORD"), "redis's requirepass is the api's REDIS_PASSWORD");
    }

    // Each server the api names is a service it shares a network with, or outside the project.
    let env = r.env("api");
    let store_host = match store {
        "qdrant" => env["QDRANT_URL"].split("://").nth(1).and_then(|h| h.split(':').next()).unwrap_or_default().to_string(),
        "milvus" => env["MILVUS_URI"].split("://").nth(1).and_then(|h| h.split(':').next()).unwrap_or_default().to_string(),
        "pgvector" => env["PGVECTOR_HOST"].clone(),
        "opensearch" => env["OPENSEARCH_HOST"].clone(),
        _ => env["WEAVIATE_ENDPOINT"].split("://").nth(1).and_then(|h| h.split(':').next()).unwrap_or_default().to_string(),
    };
    for host in [env["DB_HOST"].clone(), env["REDIS_HOST"].clone(), store_host, "sandbox".into(), "plugin_daemon".into()] {
        match service_named(r, &host) {
            Some(service) => {
                for client in ["api", "worker"] {
                    assert!(!r.networks(client).is_disjoint(&r.networks(&service)), "{client} cannot reach {service}: networks {:?} and {:?}", r.networks(client), r.networks(&service));
                }
            }
            None => {
                let named = [c.external_database.as_ref().map(|d| d.host.clone()), c.external_redis.as_ref().map(|r| r.host.clone()), c.vector_store_url.clone()];
                assert!(named.iter().flatten().any(|h| h.contains(&host)), "the api names {host:?}, which is neither a running service nor a configured external server");
            }
        }
    }
    assert_eq!(env["INTERNAL_FILES_URL"], boot::INTERNAL_API_URL, "plugins fetch files from the api inside the project");

    // nginx is published on the app port.
    assert!(r.ports("nginx").contains(&(b.app_port.to_string(), 80)), "nginx published on {}: {:?}", b.app_port, r.ports("nginx"));

    // Every data path of a stateful service is on the data volume.
    let data = real_path(&b.sandbox.data_dir());
    for (service, data_path) in STATEFUL {
        if !r.services().contains(*service) {
            continue;
        }
        let binds = r.binds(service);
        let (source, _) = binds.iter().find(|(_, target)| target == data_path).unwrap_or_else(|| panic!("{service} has no bind mount at {data_path}: {binds:?}"));
        assert!(real_path(Path::new(source)).starts_with(&data), "{service}'s {data_path} is at {source}, not on the data volume {}", data.display());
    }
}

fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}")
}

#[test]
fn the_default_configuration_starts_a_working_dify_with_no_public_secret() {
    let b = boot_config(DifyConfig::default());
    assert_works(&b);
    let env = b.resolved.env("api");
    assert_eq!(env["VECTOR_STORE"], "weaviate");
    let secrets = std::fs::read_to_string(b.sandbox.data_dir().join("secrets/dify-secrets.env")).unwrap();
    let init = secrets.lines().find_map(|l| l.strip_prefix("INIT_PASSWORD=")).unwrap();
    assert_eq!(env["INIT_PASSWORD"], init, "the first visitor needs the generated INIT_PASSWORD to claim the admin account");
    let dotenv = b.project().join(".env");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dotenv).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, ".env holds secrets");
}

#[test]
fn each_vector_store_runs_alone_and_the_api_reaches_it() {
    for store in boot::VECTOR_STORES {
        let b = boot_config(DifyConfig { vector_store: Some(store.to_string()), ..DifyConfig::default() });
        assert_works(&b);
        assert_eq!(b.resolved.var("api", "VECTOR_STORE"), *store);
        if *store != "weaviate" {
            assert!(!b.resolved.services().contains("weaviate"), "{store}: weaviate must not start");
        }
    }
}

#[test]
fn nginx_is_published_on_app_port() {
    let b = boot_with(DifyConfig::default(), 8080, &[]);
    assert_works(&b);
    assert_eq!(b.resolved.ports("nginx")[0], ("8080".to_string(), 80));
}

/// A password as users have them: every character Compose's `.env` parser could mangle.
const AWKWARD: &str = "a$b#c \"d' e\\z ${HOME} `x`";

#[test]
fn shared_external_services_replace_the_bundled_ones_and_passwords_arrive_byte_for_byte() {
    let config = DifyConfig {
        url: Some("https://dify.example.com".into()),
        external_database: Some(ExternalDatabase {
            host: "dify.cluster-abc.us-east-1.rds.amazonaws.com".into(),
            username: Some("dify".into()),
            database: Some("dify".into()),
            password_secret_arn: Some(arn("rds-managed")),
            password_secret_key: Some("password".into()),
            ..Default::default()
        }),
        external_redis: Some(ExternalRedis { host: "master.dify.abc.use1.cache.amazonaws.com".into(), tls: Some(true), ..Default::default() }),
        s3_storage: Some(S3Storage { bucket: "dify-files".into(), region: Some("us-east-1".into()) }),
        vector_store_url: Some("https://weaviate.internal:8080".into()),
        secret_env: Some(BTreeMap::from([("WEAVIATE_API_KEY".to_string(), arn("weaviate-key"))])),
        ..DifyConfig::default()
    };
    let rds_secret = serde_json::json!({"username": "dify", "password": AWKWARD}).to_string();
    let b = boot_with(config, 80, &[("rds-managed", &rds_secret), ("weaviate-key", "external-weaviate-key")]);
    assert_works(&b);
    let r = &b.resolved;
    for service in ["db_postgres", "redis", "weaviate"] {
        assert!(!r.services().contains(service), "the bundled {service} must not start");
    }
    let api = r.env("api");
    assert_eq!(api["DB_PASSWORD"], AWKWARD, "the JSON secret's password, byte for byte");
    assert_eq!(api["DB_HOST"], "dify.cluster-abc.us-east-1.rds.amazonaws.com");
    assert_eq!(r.var("plugin_daemon", "DB_DATABASE"), "dify_plugin", "the plugin daemon's own database on the external server");
    assert_eq!(r.var("plugin_daemon", "DB_HOST"), api["DB_HOST"]);
    assert_eq!(api["REDIS_PASSWORD"], "", "a password-less Redis gets no invented password");
    assert_eq!(api["CELERY_BROKER_URL"], "rediss://master.dify.abc.use1.cache.amazonaws.com:6379/1");
    assert_eq!(api["BROKER_USE_SSL"], "true");
    assert_eq!(api["STORAGE_TYPE"], "s3");
    assert_eq!(api["S3_USE_AWS_MANAGED_IAM"], "true");
    assert_eq!(api["WEAVIATE_ENDPOINT"], "https://weaviate.internal:8080");
    assert_eq!(api["WEAVIATE_API_KEY"], "external-weaviate-key", "an external weaviate's key comes from secret_env");
    for key in ["CONSOLE_API_URL", "APP_WEB_URL", "FILES_URL", "TRIGGER_URL"] {
        assert_eq!(api[key], "https://dify.example.com", "{key}");
    }
}

#[test]
fn a_redis_password_with_any_character_reaches_the_server_the_cache_and_the_broker() {
    let config = DifyConfig {
        external_database: Some(ExternalDatabase { host: "db.internal".into(), password_secret_arn: Some(arn("db")), ..Default::default() }),
        external_redis: Some(ExternalRedis { host: "redis.internal".into(), port: Some(6380), password_secret_arn: Some(arn("redis")), ..Default::default() }),
        ..DifyConfig::default()
    };
    let b = boot_with(config, 80, &[("db", AWKWARD), ("redis", AWKWARD)]);
    assert_works(&b);
    let api = b.resolved.env("api");
    assert_eq!(api["REDIS_PASSWORD"], AWKWARD);
    assert_eq!(api["DB_PASSWORD"], AWKWARD);
    assert_eq!(broker(&api["CELERY_BROKER_URL"]), (AWKWARD.to_string(), "redis.internal:6380/1".to_string(), false));
}

#[test]
fn secret_env_values_arrive_byte_for_byte_and_are_never_written_outside_dify_s_env() {
    let config = DifyConfig {
        secret_env: Some(BTreeMap::from([("SMTP_PASSWORD".to_string(), arn("smtp"))])),
        env: Some(BTreeMap::from([("MAIL_TYPE".to_string(), "smtp".to_string()), ("SMTP_SERVER".to_string(), "email-smtp.us-east-1.amazonaws.com".to_string())])),
        ..DifyConfig::default()
    };
    let b = boot_with(config, 80, &[("smtp", AWKWARD)]);
    assert_works(&b);
    let api = b.resolved.env("api");
    assert_eq!(api["SMTP_PASSWORD"], AWKWARD);
    assert_eq!(api["MAIL_TYPE"], "smtp");
    assert!(!b.sandbox.log().contains("a$b#c"), "the bootstrap log holds no secret value");
    for entry in walk(&b.sandbox.data_dir()) {
        let text = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&text).contains("a$b#c"), "{} holds an external secret", entry.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

#[test]
fn a_failed_secrets_manager_read_stops_the_boot_before_docker() {
    let config = DifyConfig { external_database: Some(ExternalDatabase { host: "db.internal".into(), password_secret_arn: Some(arn("gone")), ..Default::default() }), ..DifyConfig::default() };
    let sandbox = BootSandbox::new(&boot::render(&config, 80, None));
    sandbox.device("sdf");
    let out = sandbox.boot("vol-0abc");
    assert!(!out.status.success(), "the boot must fail");
    assert!(sandbox.log().contains("FAILED: reading secret arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"), "{}", sandbox.log());
    assert!(sandbox.compose_up_dirs().is_empty(), "Dify never starts with an empty password");

    // A JSON secret without the key: the same.
    let config = DifyConfig {
        external_database: Some(ExternalDatabase { host: "db.internal".into(), password_secret_arn: Some(arn("db")), password_secret_key: Some("pass".into()), ..Default::default() }),
        ..DifyConfig::default()
    };
    let sandbox = BootSandbox::new(&boot::render(&config, 80, None));
    sandbox.device("sdf");
    sandbox.secret("db", r#"{"username":"dify","password":"x"}"#);
    assert!(!sandbox.boot("vol-0abc").status.success());
    assert!(sandbox.log().contains("has the key \"pass\"") || sandbox.log().contains("with the key \"pass\""), "{}", sandbox.log());
    assert!(sandbox.compose_up_dirs().is_empty());
}

#[test]
fn image_overrides_reach_their_services() {
    let config = DifyConfig { image_overrides: Some(BTreeMap::from([("sandbox".to_string(), "langgenius/dify-sandbox:0.2.12".to_string()), ("nginx".to_string(), "nginx:1.27.3".to_string())])), ..DifyConfig::default() };
    let b = boot_config(config);
    assert_works(&b);
    assert_eq!(b.resolved.image("sandbox"), "langgenius/dify-sandbox:0.2.12");
    assert_eq!(b.resolved.image("nginx"), "nginx:1.27.3");
    assert_eq!(b.resolved.image("api"), "langgenius/dify-api:1.13.3", "other services keep the release's images");
}

#[test]
fn an_upgrade_rebuilds_env_from_the_new_release_with_no_stale_keys() {
    let old = DifyConfig { env: Some(BTreeMap::from([("LOG_LEVEL".to_string(), "DEBUG".to_string()), ("MAIL_TYPE".to_string(), "smtp".to_string())])), ..DifyConfig::default() };
    let sandbox = BootSandbox::new(&boot::render(&old, 80, None));
    sandbox.device("sdf");
    // The next release: its .env.example gains a key and loses one the old release had.
    let next = sandbox.upstream("1.13.3-next");
    let current = sandbox.upstream("1.13.3");
    Command::new("cp").arg("-R").arg(&current).arg(&next).status().unwrap();
    let example = next.join("docker/.env.example");
    let text = std::fs::read_to_string(&example).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("SMTP_USE_TLS=")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&example, format!("{text}NEW_IN_NEXT_RELEASE=yes\n")).unwrap();
    assert!(sandbox.boot("vol-0abc").status.success(), "{}", sandbox.log());
    let before = std::fs::read_to_string(sandbox.data_dir().join("secrets/dify-secrets.env")).unwrap();

    let new = DifyConfig { version: "1.13.3-next".into(), env: Some(BTreeMap::from([("LOG_LEVEL".to_string(), "INFO".to_string())])), ..DifyConfig::default() };
    sandbox.write_user_data(&boot::render(&new, 80, None));
    assert!(sandbox.boot("vol-0abc").status.success(), "{}", sandbox.log());
    let project = sandbox.compose_up_dirs().last().cloned().unwrap();
    assert!(real_path(&project).to_string_lossy().contains("1.13.3-next"), "the new release runs: {}", project.display());
    let dotenv = std::fs::read_to_string(project.join(".env")).unwrap();
    let keys: Vec<&str> = dotenv.lines().filter(|l| !l.starts_with('#') && l.contains('=')).map(|l| l.split('=').next().unwrap()).collect();
    assert!(keys.contains(&"NEW_IN_NEXT_RELEASE"), "the new release's keys are there");
    assert!(!keys.contains(&"SMTP_USE_TLS"), "a key the new release dropped is gone");
    assert!(!keys.contains(&"MAIL_TYPE") || dotenv.contains("MAIL_TYPE=resend"), "the user's removed env entry is gone: {}", dotenv.lines().find(|l| l.starts_with("MAIL_TYPE")).unwrap_or_default());
    let r = Resolved::of(&project);
    assert_eq!(r.var("api", "LOG_LEVEL"), "INFO");
    assert_eq!(std::fs::read_to_string(sandbox.data_dir().join("secrets/dify-secrets.env")).unwrap(), before, "the same secrets across the upgrade");
    let b = Booted { sandbox, resolved: r, config: new, app_port: 80 };
    assert_works(&b);
}

/// A data volume made as the move-compose-to-aws guide says, from an existing install: `volumes/` with the database
/// (a marker file standing for PGDATA) and `secrets/import.env` from the old `.env`.
fn migrated_volume(sandbox: &BootSandbox, layout: &[(&str, &str)], import: &str) {
    let dev = sandbox.device("sdf");
    std::fs::write(format!("{}.fs", dev.display()), "migrated-uuid").unwrap();
    sandbox.mount_data_volume();
    for (path, content) in layout {
        let file = sandbox.data_dir().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    if !import.is_empty() {
        std::fs::create_dir_all(sandbox.data_dir().join("secrets")).unwrap();
        std::fs::write(sandbox.data_dir().join("secrets/import.env"), import).unwrap();
    }
}

/// The bind source a service's `target` path resolves to, with links followed.
fn bind_source(r: &Resolved, service: &str, target: &str) -> PathBuf {
    let binds = r.binds(service);
    let (source, _) = binds.iter().find(|(_, t)| t == target).unwrap_or_else(|| panic!("{service}: no mount at {target}"));
    real_path(Path::new(source))
}

#[test]
fn a_compose_install_moved_as_the_guide_says_keeps_its_data_and_its_passwords() {
    let old_env = "SECRET_KEY=sk-old-install-key\nDB_PASSWORD=difyai123456\nREDIS_PASSWORD='old redis'\nPLUGIN_DAEMON_KEY=\"old-daemon-key\"\n";
    for layout in [
        // The guide's image: volumes/ at the filesystem's root.
        vec![("volumes/db/data/pgdata/PG_VERSION", "15"), ("volumes/app/storage/privkeys/tenant/private.pem", "key")],
        // An image made by the guide's earlier text (`mkfs.ext4 -d volumes`): db/, app/ at the root, adopted.
        vec![("db/data/pgdata/PG_VERSION", "15"), ("app/storage/privkeys/tenant/private.pem", "key")],
    ] {
        let sandbox = BootSandbox::new(&boot::render(&DifyConfig::default(), 80, None));
        migrated_volume(&sandbox, &layout, old_env);
        assert!(sandbox.boot("vol-0abc").status.success(), "{}", sandbox.log());
        assert_eq!(sandbox.calls("mkfs"), 0, "a migrated volume is never formatted");
        let r = Resolved::of(&sandbox.compose_up_dirs()[0]);
        let pgdata = bind_source(&r, "db_postgres", "/var/lib/postgresql/data");
        assert_eq!(std::fs::read_to_string(pgdata.join("pgdata/PG_VERSION")).unwrap(), "15", "PostgreSQL finds the migrated database");
        let storage = bind_source(&r, "api", "/app/api/storage");
        assert!(storage.join("privkeys/tenant/private.pem").exists(), "the tenants' keys are where the api reads them");
        assert_eq!(r.var("db_postgres", "POSTGRES_PASSWORD"), "difyai123456", "PostgreSQL keeps the old database's password, so the api must use it");
        assert_eq!(r.var("api", "DB_PASSWORD"), "difyai123456");
        assert_eq!(r.var("api", "SECRET_KEY"), "sk-old-install-key");
        assert_eq!(r.var("api", "REDIS_PASSWORD"), "old redis", "quotes of the old .env are taken off");
        assert_eq!(r.var("plugin_daemon", "SERVER_KEY"), "old-daemon-key");
        assert!(r.var("api", "INIT_PASSWORD").len() >= 16, "what the old install lacked is generated");
    }
}

#[test]
fn the_hcl_module_s_layout_is_adopted_under_volumes() {
    let sandbox = BootSandbox::new(&boot::render(&DifyConfig::default(), 80, None));
    migrated_volume(&sandbox, &[("postgres/PG_VERSION", "15"), ("redis/dump.rdb", "r"), ("weaviate/schema.db", "w")], "DB_PASSWORD=module-db-password\n");
    assert!(sandbox.boot("vol-0abc").status.success(), "{}", sandbox.log());
    assert!(sandbox.log().contains("HCL module's layout"), "a clear log line: {}", sandbox.log());
    let r = Resolved::of(&sandbox.compose_up_dirs()[0]);
    let pgdata = r.var("db_postgres", "PGDATA");
    let relative = pgdata.strip_prefix("/var/lib/postgresql/data").unwrap().trim_start_matches('/');
    assert!(bind_source(&r, "db_postgres", "/var/lib/postgresql/data").join(relative).join("PG_VERSION").exists(), "PGDATA ({pgdata}) holds the module's database");
    assert!(bind_source(&r, "redis", "/data").join("dump.rdb").exists());
    assert!(bind_source(&r, "weaviate", "/var/lib/weaviate").join("schema.db").exists());
    assert_eq!(r.var("api", "DB_PASSWORD"), "module-db-password");
}

#[test]
fn a_data_volume_with_a_filesystem_never_hides_data_on_the_root_disk() {
    let sandbox = BootSandbox::new(&boot::render(&DifyConfig::default(), 80, None));
    // A stack that ran without a data volume: Dify's data on the root disk.
    std::fs::create_dir_all(sandbox.data_dir().join("volumes/db/data")).unwrap();
    std::fs::write(sandbox.data_dir().join("volumes/db/data/PG_VERSION"), "15").unwrap();
    let dev = sandbox.device("sdf");
    std::fs::write(format!("{}.fs", dev.display()), "other-uuid").unwrap();
    let out = sandbox.boot("vol-0abc");
    assert!(!out.status.success(), "refused");
    assert!(sandbox.log().contains("would hide one of them"), "{}", sandbox.log());
    assert_eq!(sandbox.calls("mount "), 0, "not mounted over the root disk's data");
    assert!(sandbox.compose_up_dirs().is_empty());
}

const ECR: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub";

impl Resolved {
    /// The project with every profile enabled: each service the release defines, running or not.
    fn of_every_profile(project: &Path) -> Resolved {
        let out = Command::new(venv().join("bin/docker-compose"))
            .args(["--profile", "*", "config", "--format", "json"])
            .current_dir(project)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", project)
            .output()
            .unwrap();
        assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
        Resolved { json: serde_json::from_slice(&out.stdout).unwrap() }
    }
}

#[test]
fn with_an_image_registry_every_service_of_every_profile_pulls_from_it_after_an_ecr_login() {
    for store in ["weaviate", "milvus"] {
        let config = DifyConfig {
            vector_store: Some(store.into()),
            image_registry: Some(ECR.into()),
            image_overrides: Some(BTreeMap::from([
                ("sandbox".to_string(), "langgenius/dify-sandbox:0.2.12".to_string()),
                ("nginx".to_string(), "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/own/nginx:1.27.3".to_string()),
            ])),
            ..DifyConfig::default()
        };
        let b = boot_config(config);
        assert_works(&b);
        let r = &b.resolved;
        assert_eq!(r.image("api"), format!("{ECR}/langgenius/dify-api:1.13.3"), "a Docker Hub image keeps its path and tag");
        assert_eq!(r.image("sandbox"), format!("{ECR}/langgenius/dify-sandbox:0.2.12"), "an image_overrides image moves too");
        assert_eq!(r.image("nginx"), "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/own/nginx:1.27.3", "an image already on the registry's host is kept");
        assert_eq!(r.image("db_postgres"), format!("{ECR}/library/postgres:15-alpine"), "an official image under library/");
        if store == "milvus" {
            assert_eq!(r.image("etcd"), format!("{ECR}/quay.io/coreos/etcd:v3.5.5"), "another registry's image under its host");
        }
        let every = Resolved::of_every_profile(&b.project());
        assert!(every.services().len() > r.services().len() && every.services().contains("db_mysql"), "every profile: {:?}", every.services());
        for service in every.services() {
            let image = every.image(&service);
            assert!(image.starts_with("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/"), "{service} pulls {image}, not from the registry");
        }
        let calls = std::fs::read_to_string(b.sandbox.path("calls")).unwrap();
        assert!(calls.contains("aws ecr get-login-password --region ap-northeast-1"), "{calls}");
        assert!(calls.contains("docker login --username AWS --password-stdin 123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"), "{calls}");
        assert_eq!(std::fs::read_to_string(b.sandbox.path("docker-login-stdin")).unwrap().trim(), "ecr-token-from-the-instance-profile", "the token goes on stdin");
        assert!(!b.sandbox.log().contains("ecr-token-from-the-instance-profile"), "the token is never logged");
        assert!(!std::fs::read_to_string(b.sandbox.path("user-data.yaml")).unwrap().contains("ecr-token"), "nothing secret in user data");
    }
}

#[test]
fn without_an_image_registry_the_release_s_images_are_untouched() {
    let b = boot_config(DifyConfig::default());
    assert_eq!(b.resolved.image("db_postgres"), "postgres:15-alpine");
    assert!(!b.project().join("docker-compose.images.yaml").exists());
    assert_eq!(b.sandbox.calls("docker login"), 0);
}

#[test]
fn cors_origins_reach_the_api_s_environment() {
    let origins = vec!["https://main.d1abc.amplifyapp.com".to_string(), "http://localhost:3000".to_string()];
    let b = boot_config(DifyConfig { cors_allow_origins: Some(origins), ..DifyConfig::default() });
    assert_works(&b);
    for service in ["api", "worker"] {
        for key in ["WEB_API_CORS_ALLOW_ORIGINS", "CONSOLE_CORS_ALLOW_ORIGINS"] {
            assert_eq!(b.resolved.var(service, key), "https://main.d1abc.amplifyapp.com,http://localhost:3000", "{service} {key}");
        }
    }
    let default = boot_config(DifyConfig::default());
    assert_eq!(default.resolved.var("api", "WEB_API_CORS_ALLOW_ORIGINS"), "*", "unset: Dify's default");
}

#[test]
fn a_release_from_a_pinned_tarball_boots_without_github() {
    // A tarball of docker/ in S3, and GitHub's source archive (docker/ under dify-1.13.3/) on an HTTPS mirror.
    for url in ["s3://dify-artifacts/releases/dify-1.13.3-docker.tar.gz", "https://artifacts.internal/dify/1.13.3.tar.gz"] {
        let sandbox = BootSandbox::new("#cloud-config\nwrite_files: []\n");
        let (tarball, sha256) = if url.starts_with("s3://") { sandbox.release_tarball("1.13.3") } else { sandbox.release_archive("1.13.3") };
        sandbox.serve(url, &tarball);
        let config = DifyConfig { release_url: Some(url.into()), release_sha256: Some(sha256.to_uppercase()), ..DifyConfig::default() };
        sandbox.write_user_data(&boot::render(&config, 80, None));
        sandbox.device("sdf");
        assert!(sandbox.boot("vol-0abc").status.success(), "{url}: {}", sandbox.log());
        assert_eq!(sandbox.calls("git"), 0, "{url}: no clone from GitHub");
        let project = sandbox.compose_up_dirs().last().cloned().expect("docker compose up ran");
        let b = Booted { resolved: Resolved::of(&project), sandbox, config, app_port: 80 };
        assert_works(&b);
        // A second boot reuses the unpacked release.
        assert!(b.sandbox.boot("vol-0abc").status.success(), "{}", b.sandbox.log());
        assert_eq!(b.sandbox.calls("aws s3 cp") + b.sandbox.curl_downloads(), 1, "{url}: fetched once");
        if url.starts_with("s3://") {
            assert_eq!(b.sandbox.calls("aws s3 cp --only-show-errors --region us-east-1 "), 1, "in the instance's region (IMDS)");
        }
        assert!(!b.sandbox.path("root/opt/dify/1.13.3/README.md").exists() && !b.sandbox.path("root/opt/dify/1.13.3/dify-1.13.3").exists(), "only docker/ is kept");
    }
}

#[test]
fn the_compose_plugin_comes_from_its_pinned_url_only_when_the_image_lacks_it() {
    let plugin_url = "s3://dify-artifacts/docker/docker-compose-linux-x86_64-v2.29.7";
    let boot_with_plugin = |pinned: Option<&str>| {
        let sandbox = BootSandbox::new("#cloud-config\nwrite_files: []\n");
        sandbox.without_compose_plugin();
        let plugin = sandbox.path("docker-compose-binary");
        std::fs::write(&plugin, "#!/bin/sh\necho compose\n").unwrap();
        sandbox.serve(plugin_url, &plugin);
        let sha256 = pinned.map(str::to_string).unwrap_or_else(|| crate::sandbox::sha256_of(&plugin));
        let config = DifyConfig { compose_plugin_url: Some(plugin_url.into()), compose_plugin_sha256: Some(sha256), ..DifyConfig::default() };
        sandbox.write_user_data(&boot::render(&config, 80, None));
        sandbox.device("sdf");
        let ok = sandbox.boot("vol-0abc").status.success();
        (sandbox, ok)
    };
    let (sandbox, ok) = boot_with_plugin(None);
    assert!(ok, "{}", sandbox.log());
    let installed = sandbox.path("cli-plugins/docker-compose");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&installed).unwrap().permissions());
    assert!(mode & 0o111 != 0, "the plugin is executable");
    assert_eq!(sandbox.compose_up_dirs().len(), 1, "Dify started with it");
    assert_eq!(sandbox.curl_downloads(), 0, "nothing from GitHub");

    let (sandbox, ok) = boot_with_plugin(Some(&"0".repeat(64)));
    assert!(!ok, "a plugin with another checksum is refused");
    assert!(sandbox.log().contains("FAILED: the Docker Compose plugin from s3://dify-artifacts/docker/docker-compose-linux-x86_64-v2.29.7 has SHA-256"), "{}", sandbox.log());
    assert!(!sandbox.path("cli-plugins/docker-compose").exists(), "not installed");
    assert!(sandbox.compose_up_dirs().is_empty());

    // An image with the plugin downloads nothing, whatever compose_plugin_url says.
    let sandbox = BootSandbox::new("#cloud-config\nwrite_files: []\n");
    let config = DifyConfig { compose_plugin_url: Some(plugin_url.into()), compose_plugin_sha256: Some("0".repeat(64)), ..DifyConfig::default() };
    sandbox.write_user_data(&boot::render(&config, 80, None));
    sandbox.device("sdf");
    assert!(sandbox.boot("vol-0abc").status.success(), "{}", sandbox.log());
    assert_eq!(sandbox.calls("aws s3 cp"), 0);

    // No plugin and no compose_plugin_url without the internet: GitHub is unreachable, and the line says what to set.
    let sandbox = BootSandbox::new(&boot::render(&DifyConfig::default(), 80, None));
    sandbox.without_compose_plugin();
    sandbox.device("sdf");
    assert!(!sandbox.boot("vol-0abc").status.success());
    assert!(sandbox.log().contains("set compose_plugin_url or use an image with the plugin"), "{}", sandbox.log());
    assert!(sandbox.compose_up_dirs().is_empty());
}

#[test]
fn a_release_tarball_with_the_wrong_checksum_starts_nothing() {
    let sandbox = BootSandbox::new("#cloud-config\nwrite_files: []\n");
    let (tarball, sha256) = sandbox.release_tarball("1.13.3");
    let url = "s3://dify-artifacts/dify-1.13.3-docker.tar.gz";
    sandbox.serve(url, &tarball);
    let pinned = format!("{}{}", &sha256[..63], if sha256.ends_with('0') { "1" } else { "0" });
    let config = DifyConfig { release_url: Some(url.into()), release_sha256: Some(pinned.clone()), ..DifyConfig::default() };
    sandbox.write_user_data(&boot::render(&config, 80, None));
    sandbox.device("sdf");
    let out = sandbox.boot("vol-0abc");
    assert!(!out.status.success(), "the boot fails");
    let log = sandbox.log();
    assert!(log.contains(&format!("FAILED: Dify 1.13.3's release tarball from {url} has SHA-256 {sha256}, not the pinned {pinned}")), "{log}");
    assert!(sandbox.compose_up_dirs().is_empty(), "nothing started");
    assert!(!sandbox.path("root/opt/dify/1.13.3").exists() && !sandbox.path("root/opt/dify/current").exists(), "nothing unpacked");
    assert_eq!(sandbox.calls("git"), 0, "no fallback to GitHub");
}
