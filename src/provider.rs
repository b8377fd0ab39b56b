//! The `dify` provider block: its schema, configuration into AWS clients, and the resources and data sources it offers.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::aws::{self, Connection, Endpoints};
use crate::data_sources;
use crate::resources;
use crate::framework::decode::decode;
use crate::framework::schema::{Attribute, Block, NestedBlock, Schema};
use crate::framework::validate;
use crate::framework::value::{Type, Value};
use crate::framework::timeouts::parse_duration;
use crate::framework::{AttrPath, DataSource, Diagnostics, ListResource, Provider, Resource};
use crate::log;

#[derive(Debug, Default, Deserialize)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub duration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct DefaultTags {
    pub tags: Option<BTreeMap<String, String>>,
}

/// The provider block, decoded (its schema is `DifyProvider::schema`).
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

impl ProviderConfig {
    /// The block's own checks (each naming its attribute), then what `aws::connect` needs.
    fn connection(self, diags: &mut Diagnostics) -> Option<Connection> {
        let max_retries = match self.max_retries {
            None => aws::DEFAULT_MAX_RETRIES,
            Some(n) if (0..=100).contains(&n) => n as u32,
            Some(_) => {
                diags.error_at(AttrPath::root("max_retries"), "Invalid value for `max_retries`", "must be a whole number from 0 to 100.");
                return None;
            }
        };
        let assume_role = match self.assume_role {
            None => None,
            Some(role) => {
                let duration = match role.duration.as_deref().map(parse_duration).transpose() {
                    Ok(d) => d,
                    Err(e) => {
                        diags.error_at(AttrPath::root("assume_role").attr("duration"), "Invalid value for `assume_role.duration`", e);
                        return None;
                    }
                };
                Some(aws::AssumeRole { role_arn: role.role_arn, session_name: role.session_name, external_id: role.external_id, duration })
            }
        };
        Some(Connection {
            region: self.region,
            profile: self.profile,
            assume_role,
            endpoints: self.endpoints.unwrap_or_default(),
            default_tags: self.default_tags.and_then(|d| d.tags).unwrap_or_default(),
            max_retries,
            allowed_account_ids: self.allowed_account_ids.unwrap_or_default(),
            forbidden_account_ids: self.forbidden_account_ids.unwrap_or_default(),
            skip_credentials_validation: self.skip_credentials_validation.unwrap_or(false),
        })
    }
}

/// The registry address Terraform knows this provider by (its namespace comes from the Makefile's NAMESPACE).
pub const PROVIDER_ADDRESS: &str = concat!("registry.terraform.io/", env!("DIFY_PROVIDER_NAMESPACE"), "/dify");

#[derive(Default)]
pub struct DifyProvider;

fn endpoint(name: &str, service: &str) -> Attribute {
    Attribute::string(name).optional().description(&format!("Custom endpoint URL for {service}, e.g. a VPC endpoint or a local emulator."))
}

#[async_trait]
impl Provider for DifyProvider {
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("Self-host Dify on AWS. Every argument is optional and falls back to the AWS SDK's standard environment and credential chain.")
                .attr(Attribute::string("region").optional().description("AWS region. Defaults to `AWS_REGION` / `AWS_DEFAULT_REGION` or the profile's region."))
                .attr(Attribute::string("profile").optional().description("Named profile from the shared AWS config and credentials files."))
                .attr(
                    Attribute::number("max_retries")
                        .optional()
                        .description("How many times a throttled or failed AWS call is retried, with backoff. Default 25.")
                        .validate(validate::int_between(0, 100)),
                )
                .attr(
                    Attribute::new("allowed_account_ids", Type::set(Type::String))
                        .optional()
                        .description("Refuse to plan or apply unless the credentials belong to one of these accounts: the safety net for dev/stg/prd folders.")
                        .validate(validate::each(validate::not_blank())),
                )
                .attr(
                    Attribute::new("forbidden_account_ids", Type::set(Type::String))
                        .optional()
                        .description("Refuse to plan or apply when the credentials belong to one of these accounts."),
                )
                .attr(Attribute::bool("skip_credentials_validation").optional().description("Skip the STS GetCallerIdentity check at configure. Ignored when an account restriction is set, which needs it."))
                .check(validate::conflicting(&["allowed_account_ids", "forbidden_account_ids"]))
                .block(NestedBlock::single(
                    "assume_role",
                    Block::new()
                        .description("Assume an IAM role for every AWS call.")
                        .attr(Attribute::string("role_arn").required().description("ARN of the role to assume.").validate(validate::prefixed("arn:")))
                        .attr(Attribute::string("session_name").optional().description("Session name shown in CloudTrail. Default `terraform-provider-dify`."))
                        .attr(Attribute::string("external_id").optional().description("External id the role's trust policy requires."))
                        .attr(Attribute::string("duration").optional().description("Session length, such as `1h`.")),
                ))
                .block(NestedBlock::single(
                    "endpoints",
                    Block::new()
                        .description("Custom service endpoints. `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are honoured too.")
                        .attr(endpoint("ec2", "EC2"))
                        .attr(endpoint("elbv2", "Elastic Load Balancing v2"))
                        .attr(endpoint("route53", "Route 53"))
                        .attr(endpoint("ebs", "the EBS direct APIs"))
                        .attr(endpoint("sts", "STS"))
                        .attr(endpoint("dlm", "Data Lifecycle Manager (`dify_persistent_volume`'s `backup`)"))
                        .attr(endpoint("secretsmanager", "Secrets Manager (the shared secret of a multi-instance `dify_ec2_stack`)")),
                ))
                .block(NestedBlock::single(
                    "default_tags",
                    Block::new()
                        .description("Tags merged into every taggable object this provider creates; a resource's own `tags` win.")
                        .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("The tags.")),
                )),
        )
    }

    async fn configure(&self, config: &Value, terraform_version: &str, diags: &mut Diagnostics) -> Option<Arc<dyn Any + Send + Sync>> {
        if !config.is_wholly_known() {
            // Values from resources not yet created: resources and data sources that need AWS wait for them.
            log::warn("provider configuration is not fully known yet; AWS clients are not built", &[]);
            return None;
        }
        let cfg: ProviderConfig = match decode(config) {
            Ok(c) => c,
            Err(d) => {
                diags.push(d);
                return None;
            }
        };
        let clients = match aws::connect(&cfg.connection(diags)?).await {
            Ok(c) => c,
            Err(e) => {
                match e.attribute {
                    Some(attr) => diags.error_at(AttrPath::root(attr), e.summary, e.detail),
                    None => diags.error(e.summary, e.detail),
                }
                return None;
            }
        };
        log::info(
            "provider configured",
            &[
                ("region", clients.region.clone().into()),
                ("account_id", clients.account_id.clone().unwrap_or_default().into()),
                ("terraform_version", terraform_version.into()),
            ],
        );
        Some(Arc::new(clients))
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![resources::persistent_volume::resource(), resources::alb::resource(), resources::ec2_stack::resource(), resources::dns_record::resource()]
    }

    fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
        vec![resources::alb::list_resource()]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        vec![Arc::new(data_sources::network::Network), Arc::new(data_sources::ami::Ami), Arc::new(data_sources::instance_policy::InstancePolicy)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::upgrade::missing_upgraders;

    #[test]
    fn every_resource_can_upgrade_state_from_each_earlier_schema_version() {
        for r in DifyProvider.resources() {
            let version = r.schema().version;
            assert_eq!(missing_upgraders(version, &r.state_upgraders()), Vec::<i64>::new(), "{} (schema version {version}) lacks upgraders from these versions", r.type_name());
        }
    }
}
