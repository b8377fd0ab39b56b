//! The `dify` block as the boot renderer reads it: its typed settings and their defaults.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExternalDatabase {
    pub host: String,
    pub port: Option<i64>,
    pub username: Option<String>,
    pub database: Option<String>,
    /// The plugin daemon's database on the same server (Dify's `DB_PLUGIN_DATABASE`).
    pub plugin_database: Option<String>,
    pub password_secret_arn: Option<String>,
    /// The JSON key holding the password when the secret is a JSON object (RDS-managed secrets: `password`).
    pub password_secret_key: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ExternalRedis {
    pub host: String,
    pub port: Option<i64>,
    pub password_secret_arn: Option<String>,
    pub password_secret_key: Option<String>,
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
    /// Origins allowed to call Dify's APIs from a browser (`WEB_API_CORS_ALLOW_ORIGINS`, `CONSOLE_CORS_ALLOW_ORIGINS`).
    pub cors_allow_origins: Option<Vec<String>>,
    /// A registry (ECR or any mirror: `host[:port][/path]`) every image is pulled from instead of its own.
    pub image_registry: Option<String>,
    /// The release's `docker/` directory as a tarball (`s3://` or `https://`), instead of a clone from GitHub.
    pub release_url: Option<String>,
    pub release_sha256: Option<String>,
    /// The Docker Compose plugin binary (`s3://` or `https://`), when the image has no `docker compose`.
    pub compose_plugin_url: Option<String>,
    pub compose_plugin_sha256: Option<String>,
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
            cors_allow_origins: None,
            image_registry: None,
            release_url: None,
            release_sha256: None,
            compose_plugin_url: None,
            compose_plugin_sha256: None,
        }
    }
}

impl DifyConfig {
    pub fn vector_store(&self) -> &str {
        self.vector_store.as_deref().unwrap_or("weaviate")
    }
    /// The vector store runs in the instance's compose project (no `vector_store_url`).
    pub fn local_vector_store(&self) -> bool {
        self.vector_store_url.is_none()
    }
}
