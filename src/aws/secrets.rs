//! Secrets Manager: the shared application secret a multi-instance `dify_ec2_stack` owns — found by name, created
//! holding `{}`, restored, and scheduled for deletion. Its value is never read here: the instances write it.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::Tag;

use super::{errors, AwsClients, OpExt};

/// Days a deleted shared secret can still be restored (Secrets Manager allows 7–30).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;
/// The value a new shared secret holds: an empty JSON object, which the stack's first instance fills.
const EMPTY_OBJECT: &str = "{}";

/// A secret as DescribeSecret reports it (never its value).
#[derive(Debug, Clone, PartialEq)]
pub struct SecretInfo {
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    /// Scheduled for deletion (DeleteSecret with a recovery window): restorable until the window ends.
    pub scheduled_for_deletion: bool,
}

impl SecretInfo {
    /// Whether the secret carries `owner_tag = owner`.
    pub fn owned_by(&self, owner_tag: &str, owner: &str) -> bool {
        self.tags.get(owner_tag).map(String::as_str) == Some(owner)
    }
}

/// The secret named `name` (or with that ARN), `None` when there is none; one scheduled for deletion is found too.
pub async fn find(aws: &AwsClients, name: &str) -> Result<Option<SecretInfo>, String> {
    let Some(out) = errors::found(aws.secretsmanager.describe_secret().secret_id(name).send().await.op("Secrets Manager DescribeSecret", name))? else {
        return Ok(None);
    };
    Ok(Some(SecretInfo {
        arn: out.arn().unwrap_or_default().to_string(),
        tags: out.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect(),
        scheduled_for_deletion: out.deleted_date().is_some(),
    }))
}

/// Creates the secret `name` holding `{}` with `tags`, and returns its ARN.
pub async fn create_empty(aws: &AwsClients, name: &str, description: &str, tags: &BTreeMap<String, String>) -> Result<String, String> {
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let out = aws
        .secretsmanager
        .create_secret()
        .name(name)
        .description(description)
        .secret_string(EMPTY_OBJECT)
        .set_tags(Some(tags))
        .send()
        .await
        .op("Secrets Manager CreateSecret", name)?;
    Ok(out.arn().unwrap_or_default().to_string())
}

/// Cancels the scheduled deletion of a secret; its value is kept.
pub async fn restore(aws: &AwsClients, arn: &str) -> Result<(), String> {
    aws.secretsmanager.restore_secret().secret_id(arn).send().await.op("Secrets Manager RestoreSecret", arn)?;
    Ok(())
}

/// Schedules the deletion of a secret with a recovery window; one already gone or already scheduled is left as it is.
pub async fn schedule_deletion(aws: &AwsClients, arn: &str, recovery_days: i64) -> Result<(), String> {
    match aws.secretsmanager.delete_secret().secret_id(arn).recovery_window_in_days(recovery_days).send().await.op("Secrets Manager DeleteSecret", arn) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        // Secrets Manager refuses a second DeleteSecret while one is scheduled.
        Err(e) if e.code.as_deref() == Some("InvalidRequestException") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
