//! The `dify` block's static checks: each problem names its attribute and the fix, reported at `terraform validate`.

use super::*;

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

pub(super) fn is_env_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_') && !k.starts_with(|ch: char| ch.is_ascii_digit())
}

pub(super) fn is_json_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 128 && !k.contains(|ch: char| ch.is_control())
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
    let managed = managed_keys(c);
    for (k, v) in c.env.iter().flatten() {
        if managed.contains(&k.as_str()) {
            let setting = match k.as_str() {
                "WEB_API_CORS_ALLOW_ORIGINS" | "CONSOLE_CORS_ALLOW_ORIGINS" => "`dify.cors_allow_origins`".to_string(),
                "COMPOSE_FILE" => "`dify.image_overrides` and `dify.image_registry`".to_string(),
                _ => "the `dify` block's own settings".to_string(),
            };
            problems.push((
                format!("env[\"{k}\"]"),
                format!("{k} is set by the provider; use {setting}. Keys the provider manages: {}.", managed.join(", ")),
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
        } else if !is_secret_arn(arn) {
            problems.push((at, format!("{arn:?} is not a Secrets Manager secret ARN such as \"arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:dify-smtp\"")));
        }
    }
    let services = [
        ("external_database", c.external_database.as_ref().map(|d| (&d.password_secret_arn, &d.password_secret_key))),
        ("external_redis", c.external_redis.as_ref().map(|r| (&r.password_secret_arn, &r.password_secret_key))),
    ];
    for (block, secret) in services {
        let Some((arn, key)) = secret else { continue };
        if let Some(arn) = arn {
            if !is_secret_arn(arn) {
                problems.push((format!("{block}.password_secret_arn"), format!("{arn:?} is not a Secrets Manager secret ARN such as \"arn:aws:secretsmanager:ap-northeast-1:111111111111:secret:dify-db\"")));
            }
        }
        if let Some(key) = key {
            if arn.is_none() {
                problems.push((format!("{block}.password_secret_key"), "names a JSON key inside the secret: set password_secret_arn too".into()));
            } else if !is_json_key(key) {
                problems.push((format!("{block}.password_secret_key"), format!("{key:?} is not a JSON key such as \"password\"")));
            }
        }
    }
    if let Some(db) = c.external_database.as_ref().and_then(|d| d.plugin_database.as_ref()) {
        if db.is_empty() || !db.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') || Some(db) == c.external_database.as_ref().and_then(|d| d.database.as_ref()) {
            problems.push(("external_database.plugin_database".into(), format!("{db:?}: give the plugin daemon its own database name (letters, digits and _), not Dify's own database")));
        }
    }
    for (service, image) in c.image_overrides.iter().flatten() {
        if service.is_empty() || !service.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "_-".contains(ch)) || image.contains(char::is_whitespace) || image.is_empty() {
            problems.push((format!("image_overrides[\"{service}\"]"), format!("give a Compose service name and an image such as \"langgenius/dify-api:{DEFAULT_DIFY_VERSION}\"")));
        }
    }
    if c.vector_store_url.is_some() && !matches!(c.vector_store(), "weaviate" | "qdrant" | "milvus") {
        problems.push(("vector_store_url".into(), "an external vector store by URL is supported for weaviate, qdrant and milvus".into()));
    }
    if let Some(origins) = &c.cors_allow_origins {
        if origins.is_empty() {
            problems.push(("cors_allow_origins".into(), "give at least one origin such as \"https://app.example.com\", or leave the attribute out for Dify's default (`*`)".into()));
        }
        for origin in origins {
            if let Some(problem) = origin_problem(origin, origins.len()) {
                problems.push(("cors_allow_origins".into(), format!("{origin:?}: {problem}")));
            }
        }
    }
    if let Some(registry) = &c.image_registry {
        if let Some(problem) = registry_problem(registry) {
            problems.push(("image_registry".into(), format!("{registry:?}: {problem}")));
        }
    }
    for (url_attr, sha_attr, url, sha, what) in [
        ("release_url", "release_sha256", &c.release_url, &c.release_sha256, "the release's `docker/` directory as a tarball"),
        ("compose_plugin_url", "compose_plugin_sha256", &c.compose_plugin_url, &c.compose_plugin_sha256, "the Docker Compose plugin binary"),
    ] {
        match (url, sha) {
            (Some(url), sha) => {
                if !is_download_url(url) {
                    problems.push((url_attr.into(), format!("{url:?} is not an `s3://bucket/key` or `https://` URL of {what}")));
                }
                match sha {
                    None => problems.push((sha_attr.into(), format!("{url_attr} needs {sha_attr}: the SHA-256 of the file (`sha256sum FILE`), checked on the instance before it is used"))),
                    Some(sha) if !is_sha256(sha) => problems.push((sha_attr.into(), format!("{sha:?} is not a SHA-256 in hex (64 characters, as `sha256sum FILE` prints)"))),
                    Some(_) => {}
                }
            }
            (None, Some(_)) => problems.push((sha_attr.into(), format!("pins the file {url_attr} downloads: set {url_attr} too"))),
            (None, None) => {}
        }
    }
    problems
}

/// Why a CORS origin would never match what a browser sends (`scheme://host[:port]`, nothing after it), if it would not.
pub(super) fn origin_problem(origin: &str, count: usize) -> Option<String> {
    if origin == "*" {
        return (count > 1).then(|| "`*` allows every origin: give it alone, or list the origins".into());
    }
    let example = "give an origin such as \"https://app.example.com\" or \"http://localhost:3000\" (a scheme, a host and an optional port; no path)";
    if origin.contains([',', ' ']) {
        return Some("one origin per list element: [\"https://a.example.com\", \"https://b.example.com\"]".into());
    }
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return Some(example.into());
    };
    if let Some(path) = rest.find(['/', '?', '#']).map(|at| &rest[at..]) {
        return Some(format!("a browser's Origin has no path: drop {path:?}"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty() && host.chars().all(|ch| ch.is_ascii_alphanumeric() || ".-".contains(ch)) && !host.starts_with(['.', '-']) && !host.ends_with(['.', '-']);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (!host_ok || !port_ok).then(|| example.into())
}

/// Why an image registry could not prefix an image reference (`host[:port][/path]`), if it could not.
pub(super) fn registry_problem(registry: &str) -> Option<String> {
    if registry.contains("://") {
        return Some("give the registry without a scheme, such as \"123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub\"".into());
    }
    let (host, path) = registry.split_once('/').unwrap_or((registry, ""));
    // Docker reads a first part without a dot or a port as a Docker Hub namespace, not a registry.
    let host_ok = (host.contains('.') || host.contains(':') || host == "localhost") && host.chars().all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch));
    if !host_ok {
        return Some(format!("{host:?} is not a registry host (a name with a dot or a port, such as \"registry.internal:5000\"); Docker would read it as a Docker Hub namespace"));
    }
    let path_ok = path.is_empty() || (!path.ends_with('/') && path.split('/').all(|part| !part.is_empty() && part.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))));
    (!path_ok).then(|| "the path after the host is a repository prefix: lower-case letters, digits, `.`, `_`, `-` and `/`, with no tag and no trailing `/`".into())
}

pub(super) fn is_download_url(url: &str) -> bool {
    let s3_ok = url.strip_prefix("s3://").and_then(|rest| rest.split_once('/')).is_some_and(|(bucket, key)| !bucket.is_empty() && !key.is_empty());
    let https_ok = url.strip_prefix("https://").is_some_and(|rest| !rest.is_empty());
    (s3_ok || https_ok) && !url.contains(|ch: char| ch.is_whitespace() || ch.is_control())
}

pub(super) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|ch| ch.is_ascii_hexdigit())
}

pub(super) fn is_secret_arn(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.contains(":secretsmanager:") && !arn.contains(char::is_whitespace)
}
