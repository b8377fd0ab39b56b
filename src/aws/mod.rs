//! AWS access: clients built once from the provider block, the retry policy, call logging, error classification
//! (`AwsError`), ownership tags, and the finders and waiters resources share (`ec2`, `elbv2`, `route53`, `dlm`, `secrets`). Knows AWS;
//! knows nothing of Terraform's wire protocol.

pub mod calls;
pub mod dlm;
pub mod ec2;
pub mod elbv2;
pub mod route53;
pub mod secrets;
pub mod errors;
pub mod security_group;
pub mod snapshot_upload;
pub mod tags;
pub mod wait;

pub use errors::{AwsError, ErrorKind, OpExt};

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider as TlsProvider};
use serde::Deserialize;

/// Default number of retries of a throttled or failed call (the SDK's standard retry mode with backoff).
pub const DEFAULT_MAX_RETRIES: u32 = 25;

/// A role to assume for every call, with the settings the provider block gives it.
#[derive(Debug, Default)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub duration: Option<Duration>,
}

/// Endpoint overrides per service (for emulators, proxies and private endpoints).
#[derive(Debug, Default, Deserialize)]
pub struct Endpoints {
    pub ec2: Option<String>,
    pub elbv2: Option<String>,
    pub route53: Option<String>,
    pub ebs: Option<String>,
    pub sts: Option<String>,
    pub dlm: Option<String>,
    pub secretsmanager: Option<String>,
}

/// How to reach AWS: what `connect` needs, already checked (the provider block's own checks are `provider`'s).
#[derive(Debug, Default)]
pub struct Connection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub assume_role: Option<AssumeRole>,
    pub endpoints: Endpoints,
    pub default_tags: BTreeMap<String, String>,
    pub max_retries: u32,
    pub allowed_account_ids: Vec<String>,
    pub forbidden_account_ids: Vec<String>,
    pub skip_credentials_validation: bool,
}

/// Why `connect` could not give clients; `attribute` is the provider-block attribute that can fix it.
#[derive(Debug)]
pub struct ConnectError {
    pub attribute: Option<&'static str>,
    pub summary: &'static str,
    pub detail: String,
}

/// Everything resources need from AWS, built once at configure and shared.
pub struct AwsClients {
    pub region: String,
    pub account_id: Option<String>,
    pub default_tags: BTreeMap<String, String>,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub route53: aws_sdk_route53::Client,
    pub ebs: aws_sdk_ebs::Client,
    pub sts: aws_sdk_sts::Client,
    /// Data Lifecycle Manager: the backup schedules of `dify_persistent_volume`.
    pub dlm: aws_sdk_dlm::Client,
    /// Secrets Manager: the shared application secret of a multi-instance `dify_ec2_stack`.
    pub secretsmanager: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// `default_tags` merged under `tags` (resource tags win).
    pub fn merged_tags(&self, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut all = self.default_tags.clone();
        all.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }
}

/// The partition of a region's ARNs (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The HTTPS client every AWS call uses (rustls with ring).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(TlsProvider::Rustls(CryptoMode::Ring)).build_https()
}

async fn base_config(cfg: &Connection) -> Result<SdkConfig, ConnectError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(cfg.max_retries + 1).with_max_backoff(Duration::from_secs(20)));
    if let Some(region) = &cfg.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &cfg.profile {
        loader = loader.profile_name(profile);
    }
    let mut sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(ConnectError {
            attribute: Some("region"),
            summary: "No AWS region",
            detail: "set `region` in the provider block, or AWS_REGION (or AWS_DEFAULT_REGION) in the environment.".into(),
        });
    }
    if let Some(role) = &cfg.assume_role {
        let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
            .session_name(role.session_name.clone().unwrap_or_else(|| "terraform-provider-dify".to_string()));
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id.clone());
        }
        if let Some(d) = role.duration {
            builder = builder.session_length(d);
        }
        let sts_config = match cfg.endpoints.sts.clone() {
            Some(url) => sdk.to_builder().endpoint_url(url).build(),
            None => sdk.clone(),
        };
        let provider = builder.configure(&sts_config).build().await;
        sdk = sdk.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider)).build();
    }
    Ok(sdk)
}

/// Builds the clients and enforces `allowed_account_ids` / `forbidden_account_ids` with one STS call.
pub async fn connect(cfg: &Connection) -> Result<AwsClients, ConnectError> {
    let sdk = base_config(cfg).await?;
    let endpoint = |pick: fn(&Endpoints) -> &Option<String>| pick(&cfg.endpoints).clone();
    macro_rules! client {
        ($krate:ident, $pick:expr) => {{
            let mut b = $krate::config::Builder::from(&sdk).interceptor(calls::CallLogger);
            if let Some(url) = endpoint($pick) {
                b = b.endpoint_url(url);
            }
            $krate::Client::from_conf(b.build())
        }};
    }
    let clients = AwsClients {
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        account_id: None,
        default_tags: cfg.default_tags.clone(),
        ec2: client!(aws_sdk_ec2, |e| &e.ec2),
        elbv2: client!(aws_sdk_elasticloadbalancingv2, |e| &e.elbv2),
        route53: client!(aws_sdk_route53, |e| &e.route53),
        ebs: client!(aws_sdk_ebs, |e| &e.ebs),
        sts: client!(aws_sdk_sts, |e| &e.sts),
        dlm: client!(aws_sdk_dlm, |e| &e.dlm),
        secretsmanager: client!(aws_sdk_secretsmanager, |e| &e.secretsmanager),
    };
    let (allowed, forbidden) = (&cfg.allowed_account_ids, &cfg.forbidden_account_ids);
    let must_check = !allowed.is_empty() || !forbidden.is_empty() || !cfg.skip_credentials_validation;
    if !must_check {
        return Ok(clients);
    }
    let account = match clients.sts.get_caller_identity().send().await {
        Ok(out) => out.account.unwrap_or_default(),
        Err(e) => {
            return Err(ConnectError {
                attribute: None,
                summary: "Checking AWS credentials",
                detail: format!(
                    "calling STS GetCallerIdentity: {}. Check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, `profile`, `assume_role`), or set skip_credentials_validation = true when no account restriction is configured.",
                    errors::describe(&e)
                ),
            });
        }
    };
    if !allowed.is_empty() && !allowed.contains(&account) {
        return Err(ConnectError {
            attribute: Some("allowed_account_ids"),
            summary: "Wrong AWS account",
            detail: format!("this configuration may only run against account(s) {}, but the credentials are for account {account}. Switch credentials (profile, assume_role) before planning.", allowed.join(", ")),
        });
    }
    if forbidden.contains(&account) {
        return Err(ConnectError {
            attribute: Some("forbidden_account_ids"),
            summary: "Forbidden AWS account",
            detail: format!("the credentials are for account {account}, which this configuration must never change. Switch credentials (profile, assume_role) before planning."),
        });
    }
    Ok(AwsClients { account_id: Some(account), ..clients })
}
