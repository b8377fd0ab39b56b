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

use crate::framework::diag::{AttrPath, Diagnostic, Diagnostics};

/// Default number of retries of a throttled or failed call (the SDK's standard retry mode with backoff).
pub const DEFAULT_MAX_RETRIES: u32 = 25;

#[derive(Debug, Default, Deserialize)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub duration: Option<String>,
}

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

#[derive(Debug, Default, Deserialize)]
pub struct DefaultTags {
    pub tags: Option<BTreeMap<String, String>>,
}

/// The provider block, decoded.
#[derive(Debug, Default, Deserialize)]
pub struct ProviderConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub assume_role: Option<AssumeRole>,
    pub endpoints: Option<Endpoints>,
    pub default_tags: Option<DefaultTags>,
    pub max_retries: Option<i64>,
    pub allowed_account_ids: Option<Vec<String>>,
    pub forbidden_account_ids: Option<Vec<String>>,
    pub skip_credentials_validation: Option<bool>,
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

async fn base_config(cfg: &ProviderConfig, diags: &mut Diagnostics) -> Option<SdkConfig> {
    let max_retries = match cfg.max_retries {
        None => DEFAULT_MAX_RETRIES,
        Some(n) if (0..=100).contains(&n) => n as u32,
        Some(_) => {
            diags.error_at(AttrPath::root("max_retries"), "Invalid value for `max_retries`", "must be a whole number from 0 to 100.");
            return None;
        }
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(max_retries + 1).with_max_backoff(Duration::from_secs(20)));
    if let Some(region) = &cfg.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &cfg.profile {
        loader = loader.profile_name(profile);
    }
    let mut sdk = loader.load().await;
    if sdk.region().is_none() {
        diags.error_at(
            AttrPath::root("region"),
            "No AWS region",
            "set `region` in the provider block, or AWS_REGION (or AWS_DEFAULT_REGION) in the environment.",
        );
        return None;
    }
    if let Some(role) = &cfg.assume_role {
        let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
            .session_name(role.session_name.clone().unwrap_or_else(|| "terraform-provider-dify".to_string()));
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id.clone());
        }
        if let Some(d) = &role.duration {
            match crate::framework::timeouts::parse_duration(d) {
                Ok(d) => builder = builder.session_length(d),
                Err(e) => {
                    diags.error_at(AttrPath::root("assume_role").attr("duration"), "Invalid value for `assume_role.duration`", e);
                    return None;
                }
            }
        }
        let sts_config = match cfg.endpoints.as_ref().and_then(|e| e.sts.clone()) {
            Some(url) => sdk.to_builder().endpoint_url(url).build(),
            None => sdk.clone(),
        };
        let provider = builder.configure(&sts_config).build().await;
        sdk = sdk.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider)).build();
    }
    Some(sdk)
}

/// Builds the clients and enforces `allowed_account_ids` / `forbidden_account_ids` with one STS call.
pub async fn connect(cfg: &ProviderConfig, diags: &mut Diagnostics) -> Option<AwsClients> {
    let sdk = base_config(cfg, diags).await?;
    let endpoints = cfg.endpoints.as_ref();
    let endpoint = |pick: fn(&Endpoints) -> &Option<String>| endpoints.and_then(|e| pick(e).clone());
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
        default_tags: cfg.default_tags.as_ref().and_then(|d| d.tags.clone()).unwrap_or_default(),
        ec2: client!(aws_sdk_ec2, |e| &e.ec2),
        elbv2: client!(aws_sdk_elasticloadbalancingv2, |e| &e.elbv2),
        route53: client!(aws_sdk_route53, |e| &e.route53),
        ebs: client!(aws_sdk_ebs, |e| &e.ebs),
        sts: client!(aws_sdk_sts, |e| &e.sts),
        dlm: client!(aws_sdk_dlm, |e| &e.dlm),
        secretsmanager: client!(aws_sdk_secretsmanager, |e| &e.secretsmanager),
    };
    let allowed = cfg.allowed_account_ids.clone().unwrap_or_default();
    let forbidden = cfg.forbidden_account_ids.clone().unwrap_or_default();
    let must_check = !allowed.is_empty() || !forbidden.is_empty() || !cfg.skip_credentials_validation.unwrap_or(false);
    if !must_check {
        return Some(clients);
    }
    let account = match clients.sts.get_caller_identity().send().await {
        Ok(out) => out.account.unwrap_or_default(),
        Err(e) => {
            diags.push(Diagnostic::error(
                "Checking AWS credentials",
                format!(
                    "calling STS GetCallerIdentity: {}. Check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, `profile`, `assume_role`), or set skip_credentials_validation = true when no account restriction is configured.",
                    errors::describe(&e)
                ),
            ));
            return None;
        }
    };
    if !allowed.is_empty() && !allowed.contains(&account) {
        diags.error_at(
            AttrPath::root("allowed_account_ids"),
            "Wrong AWS account",
            format!("this configuration may only run against account(s) {}, but the credentials are for account {account}. Switch credentials (profile, assume_role) before planning.", allowed.join(", ")),
        );
        return None;
    }
    if forbidden.contains(&account) {
        diags.error_at(
            AttrPath::root("forbidden_account_ids"),
            "Forbidden AWS account",
            format!("the credentials are for account {account}, which this configuration must never change. Switch credentials (profile, assume_role) before planning."),
        );
        return None;
    }
    Some(AwsClients { account_id: Some(account), ..clients })
}
