//! Data Lifecycle Manager finders: a lifecycle policy by id, and the one policy that targets a tag (a finder returns
//! `None` for a policy that does not exist); the ARNs of the default DLM role and of a policy.

use aws_sdk_dlm::types::LifecyclePolicy;

use super::errors::found;
use super::{AwsClients, AwsError, OpExt};

/// The role DLM creates with `aws dlm create-default-role`, which lets it snapshot EBS volumes.
pub const DEFAULT_ROLE_NAME: &str = "AWSDataLifecycleManagerDefaultRole";

/// Policy `id` with its details, or `None` when it does not exist (deleted outside Terraform).
pub async fn find_policy(aws: &AwsClients, id: &str) -> Result<Option<LifecyclePolicy>, AwsError> {
    let out = found(aws.dlm.get_lifecycle_policy().policy_id(id).send().await.op("DLM GetLifecyclePolicy", id))?;
    Ok(out.and_then(|o| o.policy))
}

/// The id of the lifecycle policy targeting volumes tagged `key=value`, if any. DLM answers ResourceNotFound rather
/// than an empty list when nothing matches.
pub async fn find_policy_by_target_tag(aws: &AwsClients, key: &str, value: &str) -> Result<Option<String>, AwsError> {
    let out = found(aws.dlm.get_lifecycle_policies().target_tags(format!("{key}={value}")).send().await.op("DLM GetLifecyclePolicies", format!("targeting {key}={value}")))?;
    Ok(out.and_then(|o| o.policies.unwrap_or_default().into_iter().find_map(|p| p.policy_id)))
}

/// The account: from configure's STS check, or one call now (with `skip_credentials_validation`).
async fn account_id(aws: &AwsClients) -> Result<String, AwsError> {
    match &aws.account_id {
        Some(a) => Ok(a.clone()),
        None => Ok(aws.sts.get_caller_identity().send().await.op("STS GetCallerIdentity", "")?.account.unwrap_or_default()),
    }
}

/// The ARN of the account's default DLM role.
pub async fn default_role_arn(aws: &AwsClients) -> Result<String, AwsError> {
    Ok(format!("arn:{}:iam::{}:role/{DEFAULT_ROLE_NAME}", super::partition(&aws.region), account_id(aws).await?))
}

/// The ARN of policy `id`, which DLM's tagging calls take.
pub async fn policy_arn(aws: &AwsClients, id: &str) -> Result<String, AwsError> {
    Ok(format!("arn:{}:dlm:{}:{}:policy/{id}", super::partition(&aws.region), aws.region, account_id(aws).await?))
}
