//! Converging a `dify_ec2_stack`: its security group, launch template and instances (one per index), data volume
//! attachments and target registrations. Every change to an instance follows the safe order: deregister and drain,
//! stop, change, start, register, wait healthy — one instance at a time.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::{AttributeValue, Instance, InstanceStateName, VolumeState};
use tokio_util::sync::CancellationToken;

use crate::aws::{ec2, elbv2, tags, AwsClients, OpExt};
use crate::framework::private::Private;
use crate::framework::value::Value;
use crate::framework::{Diagnostics, ResourceState};
use crate::log;

use super::observe::{data_volume_of, groups_of, observe, stack_state, tag_of, Observed};
use super::template::{converge_launch_template, converge_security_group, generation, instance_tags, launch, resolve_ami, TemplateInputs};
use super::{identity, Spec, DATA_DEVICE, GENERATION_TAG};

pub struct Converged {
    pub instance_ids: Vec<String>,
    pub security_group_id: String,
    pub launch_template_id: String,
}

async fn wait_volume_available(cancel: &CancellationToken, aws: &AwsClients, volume: &str, timeout: Duration) -> Result<(), String> {
    ec2::wait_volume(cancel, aws, volume, VolumeState::Available, timeout).await.map(|_| ()).map_err(|e| format!("waiting for {volume} to be detached: {e}"))
}

async fn attach(cancel: &CancellationToken, aws: &AwsClients, instance: &str, volume: &str, timeout: Duration) -> Result<(), String> {
    aws.ec2.attach_volume().instance_id(instance).volume_id(volume).device(DATA_DEVICE).send().await.op("EC2 AttachVolume", format!("{volume} to {instance}"))?;
    ec2::wait_volume(cancel, aws, volume, VolumeState::InUse, timeout).await.map(|_| ()).map_err(|e| format!("waiting for {volume} to attach: {e}"))
}

/// Stops an instance safely: deregistered and drained first.
async fn stop(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, id: &str, timeout: Duration) -> Result<(), String> {
    elbv2::deregister_and_drain(cancel, aws, &spec.target_groups(), id, timeout).await?;
    aws.ec2.stop_instances().instance_ids(id).send().await.op("EC2 StopInstances", id)?;
    ec2::wait_instance(cancel, aws, id, InstanceStateName::Stopped, timeout).await?;
    Ok(())
}

async fn start(cancel: &CancellationToken, aws: &AwsClients, id: &str, timeout: Duration) -> Result<(), String> {
    aws.ec2.start_instances().instance_ids(id).send().await.op("EC2 StartInstances", id)?;
    ec2::wait_instance(cancel, aws, id, InstanceStateName::Running, timeout).await?;
    Ok(())
}

pub async fn converge(cancel: &CancellationToken, aws: &AwsClients, spec: &Spec, current: &Observed, previous_groups: &BTreeSet<String>, timeout: Duration) -> Result<Converged, String> {
    let vpc = ec2::describe_subnets(aws, vec![spec.subnet_ids[0].clone()])
        .await?
        .first()
        .and_then(|s| s.vpc_id())
        .map(str::to_string)
        .ok_or("the first subnet has no VPC")?;
    let sg_id = converge_security_group(aws, spec, current.security_group.as_ref(), &vpc).await?;
    let (ami, root_device) = resolve_ami(aws, spec).await?;
    let mut groups: BTreeSet<String> = spec.additional_security_group_ids.clone().unwrap_or_default();
    groups.insert(sg_id.clone());
    let inputs = TemplateInputs {
        ami: ami.clone(),
        instance_type: spec.instance_type.clone(),
        root_size: spec.root_volume_size_gb,
        profile: spec.iam_instance_profile.clone(),
        key: spec.key_name.clone(),
        groups,
        user_data: Some(spec.user_data()),
    };
    let (lt_id, lt_version, _) = converge_launch_template(aws, spec, current, &inputs, &root_device).await?;
    let groups_now = spec.target_groups();
    let count = spec.instance_count as usize;
    let wanted_generation = generation(&ami, &spec.user_data());

    // An interrupted replacement left two instances for an index: keep the one of the wanted generation, retire
    // the other (drained, stopped, its data volume released, terminated).
    let mut instances = current.instances.clone();
    for (index, other) in &current.superseded {
        let keep_other = tag_of(other, GENERATION_TAG) == Some(wanted_generation.as_str()) && instances.get(index).is_some_and(|p| tag_of(p, GENERATION_TAG) != Some(wanted_generation.as_str()));
        let retired = if keep_other { instances.insert(*index, other.clone()) } else { Some(other.clone()) };
        if let Some(r) = retired {
            log::info("finishing an interrupted replacement", &[("retiring", r.instance_id().unwrap_or_default().into()), ("index", (*index as u64).into())]);
            retire(cancel, aws, previous_groups, &r, timeout).await?;
        }
    }

    // Scale in: highest indexes first, deregistered before they are terminated; their data volumes survive.
    for (index, i) in instances.iter().rev().filter(|(index, _)| **index >= count) {
        let id = i.instance_id().unwrap_or_default().to_string();
        log::info("scaling in", &[("instance_id", id.clone().into()), ("index", (*index as u64).into())]);
        elbv2::deregister_and_drain(cancel, aws, previous_groups, &id, timeout).await?;
        ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&id), timeout).await?;
    }

    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let id = match instances.get(&index) {
            Some(i) if tag_of(i, GENERATION_TAG).is_some_and(|g| g != wanted_generation) => {
                replace_instance(cancel, aws, spec, index, i, &sg_id, (&lt_id, lt_version), &wanted_generation, previous_groups, timeout).await?
            }
            Some(i) => {
                let id = i.instance_id().unwrap_or_default().to_string();
                // Instances imported from an older module get the ownership, index and generation tags here: they
                // keep running as they are until the boot configuration or the image next changes.
                tags::sync_ec2(&aws.ec2, &id, &tags::from_ec2(i.tags()), &instance_tags(spec, index, &wanted_generation)).await?;
                // A security group recreated after a deletion outside Terraform: put the instance back into it.
                if !groups_of(i).any(|g| g.group_id() == Some(sg_id.as_str())) {
                    let mut groups = vec![sg_id.clone()];
                    groups.extend(spec.additional_security_group_ids.clone().unwrap_or_default());
                    aws.ec2
                        .modify_instance_attribute()
                        .instance_id(&id)
                        .set_groups(Some(groups))
                        .send()
                        .await
                        .op("EC2 ModifyInstanceAttribute", format!("(groups) {id}"))?;
                }
                let type_now = i.instance_type().map(|t| t.as_str()).unwrap_or_default();
                let volume_now = data_volume_of(i);
                let wanted_volume = spec.data_volume(index).map(str::to_string);
                let retype = type_now != spec.instance_type;
                let reattach = volume_now != wanted_volume;
                if retype || reattach {
                    // One instance at a time: deregister and drain, stop, change, start, register, wait healthy.
                    stop(cancel, aws, spec, &id, timeout).await?;
                    if retype {
                        aws.ec2
                            .modify_instance_attribute()
                            .instance_id(&id)
                            .instance_type(AttributeValue::builder().value(&spec.instance_type).build())
                            .send()
                            .await
                            .op("EC2 ModifyInstanceAttribute", &id)?;
                    }
                    if reattach {
                        if let Some(old) = &volume_now {
                            aws.ec2
                                .detach_volume()
                                .instance_id(&id)
                                .volume_id(old)
                                .device(DATA_DEVICE)
                                .send()
                                .await
                                .op("EC2 DetachVolume", format!("{old} from {id}"))?;
                            wait_volume_available(cancel, aws, old, timeout).await?;
                        }
                        if let Some(new) = &wanted_volume {
                            attach(cancel, aws, &id, new, timeout).await?;
                        }
                    }
                    start(cancel, aws, &id, timeout).await?;
                    elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                    if spec.wait_for_healthy.unwrap_or(false) {
                        elbv2::wait_targets_healthy(cancel, aws, &groups_now, std::slice::from_ref(&id), timeout).await?;
                    }
                } else if let Some(state @ (InstanceStateName::Pending | InstanceStateName::Stopping | InstanceStateName::Stopped)) = i.state().and_then(|s| s.name()) {
                    // Left stopped (or starting) by a change that was interrupted: stack changes deregister before
                    // they stop, so start it and register it again.
                    log::info("starting an instance an interrupted change left stopped", &[("instance_id", id.clone().into()), ("state", state.as_str().into())]);
                    if *state != InstanceStateName::Pending {
                        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Stopped, timeout).await?;
                        start(cancel, aws, &id, timeout).await?;
                    } else {
                        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await?;
                    }
                    elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                } else {
                    let new_groups: BTreeSet<String> = groups_now.difference(previous_groups).cloned().collect();
                    elbv2::register_targets(aws, &new_groups, &id, spec.app_port).await?;
                    let gone: BTreeSet<String> = previous_groups.difference(&groups_now).cloned().collect();
                    elbv2::deregister_and_drain(cancel, aws, &gone, &id, timeout).await?;
                }
                id
            }
            None => {
                let id = launch(aws, spec, index, &sg_id, (&lt_id, lt_version), &wanted_generation).await?;
                let running = ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await?;
                if let Some(volume) = spec.data_volume(index) {
                    if data_volume_of(&running).as_deref() != Some(volume) {
                        attach(cancel, aws, &id, volume, timeout).await?;
                    }
                }
                elbv2::register_targets(aws, &groups_now, &id, spec.app_port).await?;
                id
            }
        };
        ids.push(id);
    }
    if spec.wait_for_healthy.unwrap_or(false) {
        elbv2::wait_targets_healthy(cancel, aws, &groups_now, &ids, timeout).await?;
    }
    Ok(Converged { instance_ids: ids, security_group_id: sg_id, launch_template_id: lt_id })
}

/// Takes an instance out of service for good: drained, stopped, its data volume detached (waited `available`), then
/// terminated. The volume is never force-detached, and detached only from a stopped instance.
async fn retire(cancel: &CancellationToken, aws: &AwsClients, groups: &BTreeSet<String>, i: &Instance, timeout: Duration) -> Result<(), String> {
    let id = i.instance_id().unwrap_or_default().to_string();
    elbv2::deregister_and_drain(cancel, aws, groups, &id, timeout).await?;
    release_volume(cancel, aws, i, timeout).await?;
    ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&id), timeout).await?;
    Ok(())
}

/// Stops `i` (already deregistered) and detaches its data volume, waiting until the volume is `available`.
async fn release_volume(cancel: &CancellationToken, aws: &AwsClients, i: &Instance, timeout: Duration) -> Result<Option<String>, String> {
    let id = i.instance_id().unwrap_or_default().to_string();
    if !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Stopped)) {
        aws.ec2.stop_instances().instance_ids(&id).send().await.op("EC2 StopInstances", &id)?;
        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Stopped, timeout).await?;
    }
    let Some(volume) = data_volume_of(i) else { return Ok(None) };
    aws.ec2
        .detach_volume()
        .instance_id(&id)
        .volume_id(&volume)
        .device(DATA_DEVICE)
        .send()
        .await
        .op("EC2 DetachVolume", format!("{volume} from {id}"))?;
    wait_volume_available(cancel, aws, &volume, timeout).await?;
    Ok(Some(volume))
}

/// Replaces instance `old` at `index` with one of the wanted generation without ever exposing the mounted data
/// volume to two machines: deregister and drain → stop old → detach (wait `available`) → launch new in the same
/// subnet → attach → register → wait healthy → terminate old. If a step after the detach fails, the new instance is
/// terminated, the volume goes back to the old one, which is started and registered again, and the error names the
/// step. A rerun after an interruption finishes from what the tags show (see `converge`).
#[allow(clippy::too_many_arguments)]
async fn replace_instance(
    cancel: &CancellationToken,
    aws: &AwsClients,
    spec: &Spec,
    index: usize,
    old: &Instance,
    sg_id: &str,
    lt: (&str, i64),
    generation: &str,
    previous_groups: &BTreeSet<String>,
    timeout: Duration,
) -> Result<String, String> {
    let old_id = old.instance_id().unwrap_or_default().to_string();
    let groups = spec.target_groups();
    log::info("replacing instance", &[("instance_id", old_id.clone().into()), ("index", (index as u64).into())]);
    elbv2::deregister_and_drain(cancel, aws, previous_groups, &old_id, timeout).await?;
    let released = release_volume(cancel, aws, old, timeout).await?;
    // The replacement gets the volume the configuration names (normally the one just released).
    let volume = spec.data_volume(index).map(str::to_string).or_else(|| released.clone());

    let mut new_id = None;
    let forward = async {
        let id = launch(aws, spec, index, sg_id, lt, generation).await.map_err(|e| format!("launching the replacement: {e}"))?;
        new_id = Some(id.clone());
        ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await.map_err(|e| format!("starting the replacement: {e}"))?;
        if let Some(v) = &volume {
            attach(cancel, aws, &id, v, timeout).await.map_err(|e| format!("attaching {v} to the replacement: {e}"))?;
        }
        elbv2::register_targets(aws, &groups, &id, spec.app_port).await.map_err(|e| format!("registering the replacement: {e}"))?;
        if spec.wait_for_healthy.unwrap_or(false) {
            elbv2::wait_targets_healthy(cancel, aws, &groups, std::slice::from_ref(&id), timeout).await.map_err(|e| format!("waiting for the replacement to be healthy: {e}"))?;
        }
        Ok::<String, String>(id)
    }
    .await;
    match forward {
        Ok(id) => {
            ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&old_id), timeout).await?;
            Ok(id)
        }
        Err(step) => {
            // Roll back: the old instance gets its volume back and serves again.
            if let Some(id) = &new_id {
                let _ = elbv2::deregister_and_drain(cancel, aws, &groups, id, timeout).await;
                let _ = aws.ec2.terminate_instances().instance_ids(id).send().await;
                let _ = ec2::wait_instance(cancel, aws, id, InstanceStateName::Terminated, timeout).await;
            }
            let mut restored = Vec::new();
            if let Some(v) = &released {
                let _ = wait_volume_available(cancel, aws, v, timeout).await;
                if let Err(e) = attach(cancel, aws, &old_id, v, timeout).await {
                    restored.push(format!("re-attaching {v} failed too: {e}"));
                }
            }
            if let Err(e) = start(cancel, aws, &old_id, timeout).await {
                restored.push(format!("restarting {old_id} failed too: {e}"));
            }
            if let Err(e) = elbv2::register_targets(aws, previous_groups, &old_id, spec.app_port).await {
                restored.push(format!("registering {old_id} again failed too: {e}"));
            }
            let outcome = if restored.is_empty() { format!("rolled back: {old_id} has its data volume and serves again") } else { restored.join("; ") };
            Err(format!("replacing instance {} ({old_id}) failed at {step}; {outcome}", index + 1))
        }
    }
}

/// Reads the stack back after a converge; on failure records what exists (the apply reports the error) so
/// nothing is orphaned.
pub async fn read_back(aws: &AwsClients, spec: &Spec, planned: &Value, prior: &Value, result: Result<Converged, String>, what: &str, diags: &mut Diagnostics) -> Option<ResourceState> {
    // After a failure the instances still run what they ran: keep the prior boot configuration in state, so the
    // next plan shows (and the next apply retries) the change that did not happen.
    let mut base = planned.clone();
    if result.is_err() && !prior.is_null() {
        for attr in ["rendered_user_data", "user_data_sha256", "launch_template_version", "instance_type"] {
            base.set(attr, prior.get(attr).clone());
        }
    }
    let planned = &base;
    let (ids, sg, lt) = match &result {
        Ok(c) => (c.instance_ids.clone(), Some(c.security_group_id.clone()), Some(c.launch_template_id.clone())),
        Err(e) => {
            diags.error(format!("Error {what}"), e.clone());
            (vec![], None, None)
        }
    };
    match observe(aws, &spec.name, &ids, sg.as_deref(), lt.as_deref(), false).await {
        Ok(o) if result.is_err() && o.instances.is_empty() && o.security_group.is_none() && o.launch_template_id.is_none() => None,
        Ok(o) => Some(ResourceState { state: stack_state(planned, &o, aws), private: Private::default(), identity: Some(identity(&spec.name)) }),
        Err(e) => {
            diags.error(format!("Error {what}: reading it back"), e);
            None
        }
    }
}
