//! ELBv2 finders, waiters and chores the resources share: load balancers, their tags, and target registration and
//! draining. A finder returns `None` for an object that does not exist; a waiter polls through `wait`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerStateEnum, Tag, TargetDescription, TargetHealthDescription, TargetHealthStateEnum};
use tokio_util::sync::CancellationToken;

use super::wait::{wait_until, During, Status};
use super::{tags, AwsClients, AwsError, OpExt};

/// How to find a load balancer.
pub enum Lookup<'a> {
    Arn(&'a str),
    Name(&'a str),
}

/// The load balancer by ARN or name; `None` when it does not exist.
pub async fn find_load_balancer(aws: &AwsClients, lookup: Lookup<'_>) -> Result<Option<LoadBalancer>, AwsError> {
    let req = aws.elbv2.describe_load_balancers();
    let req = match lookup {
        Lookup::Arn(a) => req.load_balancer_arns(a),
        Lookup::Name(n) => req.names(n),
    };
    match req.send().await.op("ELBv2 DescribeLoadBalancers", "") {
        Ok(out) => Ok(out.load_balancers.unwrap_or_default().into_iter().next()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits until load balancer `arn` is active; one just created may not be listed yet (eventual consistency).
pub async fn wait_load_balancer_active(cancel: &CancellationToken, aws: &AwsClients, arn: &str, timeout: Duration) -> Result<(), String> {
    wait_until(cancel, timeout, || async {
        let Some(lb) = find_load_balancer(aws, Lookup::Arn(arn)).await? else { return Ok(Status::Pending("not visible yet".into())) };
        Ok(match lb.state().and_then(|s| s.code()) {
            Some(LoadBalancerStateEnum::Active) | None => Status::Done(()),
            Some(LoadBalancerStateEnum::Failed) => return Err(format!("load balancer {arn} failed: {}", lb.state().and_then(|s| s.reason()).unwrap_or("no reason given"))),
            Some(other) => Status::Pending(other.as_str().to_string()),
        })
    })
    .await
    .during(format_args!("waiting for load balancer {arn} to become active"))
}

/// Waits until load balancer `arn` is gone.
pub async fn wait_load_balancer_deleted(cancel: &CancellationToken, aws: &AwsClients, arn: &str, timeout: Duration) -> Result<(), String> {
    wait_until(cancel, timeout, || async {
        Ok(match find_load_balancer(aws, Lookup::Arn(arn)).await? {
            None => Status::Done(()),
            Some(_) => Status::Pending("deleting".into()),
        })
    })
    .await
    .during(format_args!("waiting for load balancer {arn} to be deleted"))
}

pub fn to_elb(t: &BTreeMap<String, String>) -> Vec<Tag> {
    t.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The tags of ELBv2 object `arn`.
pub async fn tags_of(aws: &AwsClients, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = aws.elbv2.describe_tags().resource_arns(arn).send().await.op("ELBv2 DescribeTags", "")?;
    Ok(out.tag_descriptions().iter().flat_map(|d| d.tags()).filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect())
}

/// Makes the tags of ELBv2 object `arn` go from `now` to `wanted` (internal tags are left alone).
pub async fn sync_elb_tags(aws: &AwsClients, arn: &str, now: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> Result<(), AwsError> {
    let (upsert, remove) = tags::diff(now, wanted);
    if !upsert.is_empty() {
        aws.elbv2.add_tags().resource_arns(arn).set_tags(Some(to_elb(&upsert))).send().await.op("ELBv2 AddTags", arn)?;
    }
    if !remove.is_empty() {
        aws.elbv2.remove_tags().resource_arns(arn).set_tag_keys(Some(remove)).send().await.op("ELBv2 RemoveTags", arn)?;
    }
    Ok(())
}

/// Registers `instance` on `port` in each of `groups`.
pub async fn register_targets(aws: &AwsClients, groups: &BTreeSet<String>, instance: &str, port: i64) -> Result<(), AwsError> {
    for tg in groups {
        aws.elbv2
            .register_targets()
            .target_group_arn(tg)
            .targets(TargetDescription::builder().id(instance).port(port as i32).build())
            .send()
            .await
            .op("ELBv2 RegisterTargets", format!("{instance} in {tg}"))?;
    }
    Ok(())
}

/// Deregisters `instance` from each of `groups` and waits until it has drained (AWS applies the target group's
/// deregistration delay). An instance never registered has nothing to drain.
pub async fn deregister_and_drain(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, instance: &str, timeout: Duration) -> Result<(), String> {
    for tg in groups {
        match aws.elbv2.deregister_targets().target_group_arn(tg).targets(TargetDescription::builder().id(instance).build()).send().await.op("ELBv2 DeregisterTargets", format!("{instance} from {tg}")) {
            Ok(_) => {}
            // Never registered (an interrupted apply stopped before registering it): nothing to drain.
            Err(e) if e.is_not_found() || e.code.as_deref() == Some("InvalidTarget") => continue,
            Err(e) => return Err(e.into()),
        }
        wait_until(cancel, timeout, || async {
            let out = aws.elbv2.describe_target_health().target_group_arn(tg).send().await.op("ELBv2 DescribeTargetHealth", "")?;
            let draining = out.target_health_descriptions().iter().find(|d| d.target().and_then(|t| t.id()) == Some(instance)).and_then(|d| d.target_health()).and_then(|h| h.state()).cloned();
            Ok(match draining {
                None | Some(TargetHealthStateEnum::Unused) => Status::Done(()),
                Some(s) => Status::Pending(format!("target {}", s.as_str())),
            })
        })
        .await
        .during(format_args!("draining {instance} from {tg}"))?;
    }
    Ok(())
}

/// Why a target is not healthy yet ("i-1: initial (Target registration is in progress)"), or `None` when it is.
fn not_healthy(id: &str, d: Option<&TargetHealthDescription>) -> Option<String> {
    let h = d.and_then(|d| d.target_health());
    if h.and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy) {
        return None;
    }
    let reason = h.and_then(|h| h.description()).or_else(|| h.and_then(|h| h.reason()).map(|r| r.as_str())).unwrap_or("not registered yet");
    Some(format!("{id}: {} ({reason})", h.and_then(|h| h.state()).map(|s| s.as_str()).unwrap_or("unknown")))
}

/// Polls the health of each of `groups` until `pending` finds nothing unhealthy among its targets.
async fn wait_health<F>(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, timeout: Duration, what: &str, pending: F) -> Result<(), String>
where
    F: Fn(&[TargetHealthDescription]) -> Option<String>,
{
    for tg in groups {
        wait_until(cancel, timeout, || async {
            let out = aws.elbv2.describe_target_health().target_group_arn(tg).send().await.op("ELBv2 DescribeTargetHealth", "")?;
            Ok(match pending(out.target_health_descriptions()) {
                Some(why) => Status::Pending(why),
                None => Status::Done(()),
            })
        })
        .await
        .during(format_args!("waiting for {what} in {tg}"))?;
    }
    Ok(())
}

/// Waits until every one of `instances` is healthy in every one of `groups`; on timeout the error carries AWS's last
/// reason.
pub async fn wait_targets_healthy(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, instances: &[String], timeout: Duration) -> Result<(), String> {
    wait_health(cancel, aws, groups, timeout, "healthy targets", |found| {
        instances.iter().find_map(|id| not_healthy(id, found.iter().find(|d| d.target().and_then(|t| t.id()) == Some(id.as_str()))))
    })
    .await
}

/// Waits until every target registered in `groups` other than `except` is healthy (one draining or unused is not
/// registered), so taking `except` out leaves the others serving; on timeout the error names the one that is not.
pub async fn wait_others_healthy(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, except: &str, timeout: Duration) -> Result<(), String> {
    wait_health(cancel, aws, groups, timeout, &format!("every target but {except} to be healthy"), |found| {
        found
            .iter()
            .filter(|d| d.target().and_then(|t| t.id()).is_some_and(|id| id != except))
            .filter(|d| !matches!(d.target_health().and_then(|h| h.state()), Some(TargetHealthStateEnum::Draining | TargetHealthStateEnum::Unused)))
            .find_map(|d| not_healthy(d.target().and_then(|t| t.id()).unwrap_or_default(), Some(d)))
    })
    .await
}
