//! The shared application secret of a multi-instance `dify_ec2_stack` (`dify/<name>/app-secrets`): ensured before
//! any instance launches (created holding `{}`, adopted, or restored), read back for drift, scheduled for deletion
//! with the stack. The provider never reads or writes its value beyond the first `{}`: the instances fill it.

use std::collections::BTreeMap;

use crate::aws::secrets::{self, SecretInfo};
use crate::aws::AwsClients;
use crate::boot;
use crate::log;

use super::{Spec, STACK_TAG};

/// Why a secret of the stack's name cannot be used: it belongs to something else.
fn foreign(name: &str, stack: &str, found: &SecretInfo) -> String {
    format!(
        "a Secrets Manager secret named {name} ({}) already exists and is not tagged {STACK_TAG} = {stack}, so it is not this stack's: its instances would share (and overwrite) another system's secret. Nothing was changed. Delete or rename that secret, or give the stack another `name`; if it is this stack's own secret from before, tag it {STACK_TAG} = {stack} and apply again.",
        found.arn
    )
}

/// Checks, before anything changes, that the stack's secret name is free or ours; returns what is there.
pub async fn check_ours(aws: &AwsClients, stack: &str) -> Result<Option<SecretInfo>, String> {
    let name = boot::shared_secret_name(stack);
    match secrets::find(aws, &name).await? {
        Some(found) if !found.owned_by(STACK_TAG, stack) => Err(foreign(&name, stack, &found)),
        other => Ok(other),
    }
}

/// Makes the stack's shared secret exist and returns its ARN: the one already there (an interrupted create, or
/// the secret of a stack destroyed within the recovery window, restored with its values), or a new one holding `{}`.
pub async fn ensure(aws: &AwsClients, spec: &Spec, present: Option<SecretInfo>) -> Result<String, String> {
    let name = boot::shared_secret_name(&spec.name);
    match present {
        Some(found) if found.scheduled_for_deletion => {
            log::info("restoring the stack's shared secret from its scheduled deletion", &[("secret", found.arn.clone().into())]);
            secrets::restore(aws, &found.arn).await?;
            Ok(found.arn)
        }
        Some(found) => Ok(found.arn),
        None => {
            let mut tags: BTreeMap<String, String> = spec.tags_all.clone().unwrap_or_default();
            tags.insert(STACK_TAG.to_string(), spec.name.clone());
            let description = format!("Dify's application secrets (SECRET_KEY and the others) shared by the instances of the dify_ec2_stack {}; written by its instance 0.", spec.name);
            secrets::create_empty(aws, &name, &description, &tags).await
        }
    }
}

/// The ARN of the stack's shared secret as it stands: `None` when it is gone or scheduled for deletion (drift the
/// next apply repairs), or when the secret of that name is not ours.
pub async fn live_arn(aws: &AwsClients, stack: &str) -> Result<Option<String>, String> {
    Ok(secrets::find(aws, &boot::shared_secret_name(stack)).await?.filter(|s| s.owned_by(STACK_TAG, stack) && !s.scheduled_for_deletion).map(|s| s.arn))
}

/// Schedules the deletion of the stack's secret (if it is ours and still there), with the recovery window.
pub async fn schedule_deletion(aws: &AwsClients, stack: &str, recovery_days: i64) -> Result<(), String> {
    match secrets::find(aws, &boot::shared_secret_name(stack)).await? {
        Some(s) if s.owned_by(STACK_TAG, stack) && !s.scheduled_for_deletion => secrets::schedule_deletion(aws, &s.arn, recovery_days).await,
        _ => Ok(()),
    }
}

/// Before an apply changes anything else: the shared secret ARN the stack ends with. A multi-instance stack whose
/// plan did not keep a known ARN (a create, a scale-out, drift) checks the name is ours, then ensures the secret;
/// a single instance keeps what it had (the secret outlives a scale-in while the stack exists).
pub async fn before_launch(aws: &AwsClients, spec: &Spec) -> Result<Option<String>, String> {
    if spec.instance_count <= 1 || spec.shared_secret_arn.is_some() {
        return Ok(spec.shared_secret_arn.clone());
    }
    let present = check_ours(aws, &spec.name).await?;
    ensure(aws, spec, present).await.map(Some)
}
