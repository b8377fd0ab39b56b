//! Converging a `dify_ec2_stack`'s instances around one `Rollout` (clients, cancellation, timeout, the wanted stack).
//! Every change to an instance follows the safe order: deregister and drain, stop, change, start, register, wait
//! healthy — one instance at a time, and with two or more only once every other registered target is healthy — and
//! a data volume is only ever detached from a stopped instance. Replacements are pre-warmed (`prewarm.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ec2::types::{AttributeValue, Instance, InstanceStateName, VolumeState};
use tokio_util::sync::CancellationToken;

use crate::aws::wait::During;
use crate::aws::{ec2, elbv2, tags, AwsClients, OpExt};
use crate::framework::private::Private;
use crate::framework::value::Value;
use crate::framework::{Diagnostic, Diagnostics, ResourceState};
use crate::log;

use super::snapshot::{prune_before_replace, take_before_replace, DEFAULT_SNAPSHOTS_TO_KEEP};
use super::observe::{data_volume_of, groups_of, observe, stack_state, tag_of, Observed};
use super::template::{instance_tags, prepare, run_instance, LaunchFrom};
use super::{identity, Spec, DATA_DEVICE, GENERATION_TAG};

pub struct Converged {
    pub instance_ids: Vec<String>,
    pub security_group_id: String,
    pub launch_template_id: String,
}

/// One apply of a stack: what every step needs.
pub struct Rollout<'a> {
    pub aws: &'a AwsClients,
    pub cancel: &'a CancellationToken,
    pub timeout: Duration,
    pub spec: &'a Spec,
    /// The target groups the instances were registered with (the prior state's; none at create).
    pub previous_groups: &'a BTreeSet<String>,
    /// Warnings the apply reports whatever its outcome (the pre-replace snapshots taken).
    pub warnings: Mutex<Vec<Diagnostic>>,
}

pub(super) fn id_of(i: &Instance) -> String {
    i.instance_id().unwrap_or_default().to_string()
}

/// The state of an instance a change that was interrupted left stopped (or starting).
fn left_stopped(i: &Instance) -> Option<&InstanceStateName> {
    i.state().and_then(|s| s.name()).filter(|s| matches!(s, InstanceStateName::Pending | InstanceStateName::Stopping | InstanceStateName::Stopped))
}

impl Rollout<'_> {
    /// The policy: what new instances launch from, then retire the superseded side of an interrupted replacement,
    /// scale in, and bring each index to the spec — replace an instance of another generation, change one in place,
    /// resume one left stopped, or launch a missing one.
    pub async fn converge(&self, current: &Observed) -> Result<Converged, String> {
        let from = prepare(self.aws, self.spec, current).await?;
        let count = self.spec.instance_count as usize;
        let instances = self.retire_superseded(&from, current).await?;
        self.scale_in(&instances, count).await?;
        let mut ids = Vec::with_capacity(count);
        for index in 0..count {
            let id = match instances.get(&index) {
                Some(old) if from.supersedes(old) => self.replace(&from, index, old).await?,
                Some(i) => {
                    self.adopt(&from, index, i).await?;
                    if self.changes_in_place(index, i) {
                        self.change_in_place(index, i).await?;
                    } else if let Some(state) = left_stopped(i) {
                        self.resume_stopped(i, state).await?;
                    } else {
                        self.follow_target_groups(i).await?;
                    }
                    id_of(i)
                }
                None => self.launch(&from, index).await?,
            };
            ids.push(id);
        }
        if self.spec.wait_for_healthy.unwrap_or(false) {
            elbv2::wait_targets_healthy(self.cancel, self.aws, &self.spec.target_groups(), &ids, self.timeout).await?;
        }
        Ok(Converged { instance_ids: ids, security_group_id: from.sg_id, launch_template_id: from.lt_id })
    }

    /// An interrupted replacement left two instances for an index: keep the one of the wanted generation, retire
    /// the other (drained, stopped, its data volume released, terminated). Returns the instance kept at each index.
    async fn retire_superseded(&self, from: &LaunchFrom, current: &Observed) -> Result<BTreeMap<usize, Instance>, String> {
        let wanted = Some(from.generation.as_str());
        let mut instances = current.instances.clone();
        for (index, other) in &current.superseded {
            let keep_other = tag_of(other, GENERATION_TAG) == wanted && instances.get(index).is_some_and(|p| tag_of(p, GENERATION_TAG) != wanted);
            let retired = if keep_other { instances.insert(*index, other.clone()) } else { Some(other.clone()) };
            if let Some(r) = retired {
                log::info("finishing an interrupted replacement", &[("retiring", r.instance_id().unwrap_or_default().into()), ("index", (*index as u64).into())]);
                self.retire(&r).await?;
            }
        }
        Ok(instances)
    }

    /// Scale in: highest indexes first, deregistered before they are terminated; their data volumes survive.
    async fn scale_in(&self, instances: &BTreeMap<usize, Instance>, count: usize) -> Result<(), String> {
        for (index, i) in instances.iter().rev().filter(|(index, _)| **index >= count) {
            let id = id_of(i);
            log::info("scaling in", &[("instance_id", id.clone().into()), ("index", (*index as u64).into())]);
            self.others_healthy(&id).await?;
            elbv2::deregister_and_drain(self.cancel, self.aws, self.previous_groups, &id, self.timeout).await?;
            ec2::terminate_and_wait(self.cancel, self.aws, std::slice::from_ref(&id), self.timeout).await?;
        }
        Ok(())
    }

    /// Launches the instance of `index`: running, its data volume attached, registered.
    async fn launch(&self, from: &LaunchFrom, index: usize) -> Result<String, String> {
        let id = run_instance(self.aws, self.spec, index, from).await?;
        let running = ec2::wait_instance(self.cancel, self.aws, &id, InstanceStateName::Running, self.timeout).await?;
        if let Some(volume) = self.spec.data_volume(index) {
            if data_volume_of(&running).as_deref() != Some(volume) {
                self.attach(&id, volume).await?;
            }
        }
        elbv2::register_targets(self.aws, &self.spec.target_groups(), &id, self.spec.app_port).await?;
        Ok(id)
    }

    /// Instances imported from an older module get the ownership, index and generation tags here: they keep running
    /// as they are until the boot configuration or the image next changes. An instance whose security group was
    /// recreated (after a deletion outside Terraform) is put back into it.
    async fn adopt(&self, from: &LaunchFrom, index: usize, i: &Instance) -> Result<(), String> {
        let (aws, spec, id) = (self.aws, self.spec, id_of(i));
        tags::sync_ec2(&aws.ec2, &id, &tags::from_ec2(i.tags()), &instance_tags(spec, index, &from.generation)).await?;
        if !groups_of(i).any(|g| g.group_id() == Some(from.sg_id.as_str())) {
            let mut groups = vec![from.sg_id.clone()];
            groups.extend(spec.additional_security_group_ids.clone().unwrap_or_default());
            aws.ec2.modify_instance_attribute().instance_id(&id).set_groups(Some(groups)).send().await.op("EC2 ModifyInstanceAttribute", format!("(groups) {id}"))?;
        }
        Ok(())
    }

    /// Whether the instance at `index` needs another instance type or data volume, which change it in place.
    fn changes_in_place(&self, index: usize, i: &Instance) -> bool {
        i.instance_type().map(|t| t.as_str()).unwrap_or_default() != self.spec.instance_type || data_volume_of(i).as_deref() != self.spec.data_volume(index)
    }

    /// One instance at a time: deregister and drain, stop, change its type and/or data volume, start, register, wait
    /// healthy.
    async fn change_in_place(&self, index: usize, i: &Instance) -> Result<(), String> {
        let (aws, spec, id) = (self.aws, self.spec, id_of(i));
        let volume_now = data_volume_of(i);
        let wanted_volume = spec.data_volume(index).map(str::to_string);
        let retype = i.instance_type().map(|t| t.as_str()).unwrap_or_default() != spec.instance_type;
        let reattach = volume_now != wanted_volume;
        self.others_healthy(&id).await?;
        self.stop(&id).await?;
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
                self.detach(&id, old).await?;
            }
            if let Some(new) = &wanted_volume {
                self.attach(&id, new).await?;
            }
        }
        self.start(&id).await?;
        self.register_healthy(&id).await
    }

    /// Registers `id` in the target groups and, with `wait_for_healthy`, waits until it is healthy in each.
    pub(super) async fn register_healthy(&self, id: &str) -> Result<(), String> {
        let groups = self.spec.target_groups();
        elbv2::register_targets(self.aws, &groups, id, self.spec.app_port).await?;
        if self.spec.wait_for_healthy.unwrap_or(false) {
            elbv2::wait_targets_healthy(self.cancel, self.aws, &groups, &[id.to_string()], self.timeout).await?;
        }
        Ok(())
    }

    /// With two or more instances (and `wait_for_healthy`), waits before `id` leaves the target groups until every
    /// other registered target is healthy: a rolling change never leaves none serving.
    pub(super) async fn others_healthy(&self, id: &str) -> Result<(), String> {
        if self.spec.instance_count < 2 || !self.spec.wait_for_healthy.unwrap_or(false) {
            return Ok(());
        }
        elbv2::wait_others_healthy(self.cancel, self.aws, &self.spec.target_groups(), id, self.timeout).await
    }

    /// Left stopped (or starting) by a change that was interrupted: stack changes deregister before they stop, so
    /// start it and register it again.
    async fn resume_stopped(&self, i: &Instance, state: &InstanceStateName) -> Result<(), String> {
        let id = id_of(i);
        log::info("starting an instance an interrupted change left stopped", &[("instance_id", id.clone().into()), ("state", state.as_str().into())]);
        if *state != InstanceStateName::Pending {
            ec2::wait_instance(self.cancel, self.aws, &id, InstanceStateName::Stopped, self.timeout).await?;
            self.start(&id).await?;
        } else {
            ec2::wait_instance(self.cancel, self.aws, &id, InstanceStateName::Running, self.timeout).await?;
        }
        elbv2::register_targets(self.aws, &self.spec.target_groups(), &id, self.spec.app_port).await?;
        Ok(())
    }

    /// A serving instance follows a change of `target_group_arns`: registered in the new groups, drained from the
    /// groups it left.
    async fn follow_target_groups(&self, i: &Instance) -> Result<(), String> {
        let (id, groups_now) = (id_of(i), self.spec.target_groups());
        let new_groups: BTreeSet<String> = groups_now.difference(self.previous_groups).cloned().collect();
        elbv2::register_targets(self.aws, &new_groups, &id, self.spec.app_port).await?;
        let gone: BTreeSet<String> = self.previous_groups.difference(&groups_now).cloned().collect();
        elbv2::deregister_and_drain(self.cancel, self.aws, &gone, &id, self.timeout).await?;
        Ok(())
    }

    /// Takes an instance out of service for good: drained, stopped, its data volume detached (waited `available`),
    /// then terminated. The volume is never force-detached, and detached only from a stopped instance.
    async fn retire(&self, i: &Instance) -> Result<(), String> {
        let id = id_of(i);
        elbv2::deregister_and_drain(self.cancel, self.aws, self.previous_groups, &id, self.timeout).await?;
        self.release_volume(i).await?;
        ec2::terminate_and_wait(self.cancel, self.aws, std::slice::from_ref(&id), self.timeout).await?;
        Ok(())
    }

    /// Stops `i` (already deregistered), snapshots its data volume and detaches it, waiting until the volume is
    /// `available`.
    async fn release_volume(&self, i: &Instance) -> Result<Option<String>, String> {
        let id = id_of(i);
        self.stop_deregistered(i).await?;
        let Some(volume) = data_volume_of(i) else { return Ok(None) };
        self.snapshot_before_move(&id, &volume).await.map_err(|e| {
            format!("the pre-replace snapshot of {volume} (on {id}, stopped, still attached) failed: {e}. Allow ec2:CreateSnapshot and ec2:CreateTags, or set snapshot_before_replace = false")
        })?;
        self.detach(&id, &volume).await?;
        Ok(Some(volume))
    }

    /// Stops `i` (already deregistered) unless it is stopped.
    pub(super) async fn stop_deregistered(&self, i: &Instance) -> Result<(), String> {
        let id = id_of(i);
        if !matches!(i.state().and_then(|s| s.name()), Some(InstanceStateName::Stopped)) {
            self.aws.ec2.stop_instances().instance_ids(&id).send().await.op("EC2 StopInstances", &id)?;
            ec2::wait_instance(self.cancel, self.aws, &id, InstanceStateName::Stopped, self.timeout).await?;
        }
        Ok(())
    }

    /// Before `volume` leaves the stopped instance `id` for good (a replacement or a retirement moves it), snapshot it
    /// unless `snapshot_before_replace` is false, report the snapshot in a warning, and delete this volume's
    /// pre-replace snapshots beyond `snapshots_to_keep`. A failed clean-up is a warning, not a failed replacement.
    pub(super) async fn snapshot_before_move(&self, id: &str, volume: &str) -> Result<(), String> {
        if self.spec.snapshot_before_replace == Some(false) {
            return Ok(());
        }
        let snapshot_id = take_before_replace(self.aws, self.spec, id, volume).await?;
        log::info("pre-replace snapshot", &[("snapshot_id", snapshot_id.clone().into()), ("volume_id", volume.to_string().into())]);
        let mut warnings = vec![Diagnostic::warning(
            format!("Pre-replace snapshot {snapshot_id} of data volume ({volume})"),
            format!(
                "before moving {volume} off instance {id}, its data was kept in snapshot {snapshot_id} (tagged {}={volume}, {}=before-replace). To roll back, create a volume from it (dify_persistent_volume's snapshot_id) and point data_volume_ids at it; see the upgrade guide.",
                tags::SNAPSHOT_OF,
                tags::SNAPSHOT_REASON
            ),
        )];
        let keep = self.spec.snapshots_to_keep.unwrap_or(DEFAULT_SNAPSHOTS_TO_KEEP).max(1) as usize;
        if let Err(e) = prune_before_replace(self.aws, volume, &snapshot_id, keep).await {
            warnings.push(Diagnostic::warning(
                format!("Older pre-replace snapshots of data volume ({volume}) were not deleted"),
                format!("keeping the newest {keep} (snapshots_to_keep) failed: {e}. Allow ec2:DescribeSnapshots and ec2:DeleteSnapshot, or delete them by hand."),
            ));
        }
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).extend(warnings);
        Ok(())
    }

    /// Starts the stopped instance `id` and registers it in the groups it served; what failed, if anything.
    pub(super) async fn serve_again(&self, id: &str) -> Vec<String> {
        let mut failed = Vec::new();
        if let Err(e) = self.start(id).await {
            failed.push(format!("restarting {id} failed too: {e}"));
        }
        if let Err(e) = elbv2::register_targets(self.aws, self.previous_groups, id, self.spec.app_port).await {
            failed.push(format!("registering {id} again failed too: {e}"));
        }
        failed
    }

    /// Stops an instance safely: deregistered and drained first.
    async fn stop(&self, id: &str) -> Result<(), String> {
        elbv2::deregister_and_drain(self.cancel, self.aws, &self.spec.target_groups(), id, self.timeout).await?;
        self.aws.ec2.stop_instances().instance_ids(id).send().await.op("EC2 StopInstances", id)?;
        ec2::wait_instance(self.cancel, self.aws, id, InstanceStateName::Stopped, self.timeout).await?;
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), String> {
        self.aws.ec2.start_instances().instance_ids(id).send().await.op("EC2 StartInstances", id)?;
        ec2::wait_instance(self.cancel, self.aws, id, InstanceStateName::Running, self.timeout).await?;
        Ok(())
    }

    /// Detaches `volume` from the (stopped) instance `id`, never forced, and waits until it is `available`.
    pub(super) async fn detach(&self, id: &str, volume: &str) -> Result<(), String> {
        self.aws.ec2.detach_volume().instance_id(id).volume_id(volume).device(DATA_DEVICE).send().await.op("EC2 DetachVolume", format!("{volume} from {id}"))?;
        self.wait_volume_available(volume).await
    }

    pub(super) async fn wait_volume_available(&self, volume: &str) -> Result<(), String> {
        ec2::wait_volume(self.cancel, self.aws, volume, VolumeState::Available, self.timeout).await.map(|_| ()).during(format_args!("waiting for {volume} to be detached"))
    }

    pub(super) async fn attach(&self, instance: &str, volume: &str) -> Result<(), String> {
        self.aws.ec2.attach_volume().instance_id(instance).volume_id(volume).device(DATA_DEVICE).send().await.op("EC2 AttachVolume", format!("{volume} to {instance}"))?;
        ec2::wait_volume(self.cancel, self.aws, volume, VolumeState::InUse, self.timeout).await.map(|_| ()).during(format_args!("waiting for {volume} to attach"))
    }

    /// Reads the stack back after a converge; on failure records what exists (the apply reports the error) so
    /// nothing is orphaned.
    pub async fn finish(&self, planned: &Value, prior: &Value, result: Result<Converged, String>, what: &str, diags: &mut Diagnostics) -> Option<ResourceState> {
        // After a failure the instances still run what they ran: keep the prior boot configuration in state, so the
        // next plan shows (and the next apply retries) the change that did not happen.
        let mut base = planned.clone();
        if result.is_err() && !prior.is_null() {
            for attr in ["rendered_user_data", "user_data_sha256", "launch_template_version", "instance_type"] {
                base.set(attr, prior.get(attr).clone());
            }
        }
        let planned = &base;
        for warning in self.warnings.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            diags.push(warning);
        }
        let (ids, sg, lt) = match &result {
            Ok(c) => (c.instance_ids.clone(), Some(c.security_group_id.clone()), Some(c.launch_template_id.clone())),
            Err(e) => {
                diags.error(format!("Error {what}"), e.clone());
                (vec![], None, None)
            }
        };
        match observe(self.aws, &self.spec.name, &ids, sg.as_deref(), lt.as_deref(), false).await {
            Ok(o) if result.is_err() && o.instances.is_empty() && o.security_group.is_none() && o.launch_template_id.is_none() => None,
            Ok(o) => Some(ResourceState { state: stack_state(planned, &o, self.aws), private: Private::default(), identity: Some(identity(&self.spec.name)) }),
            Err(e) => {
                diags.error(format!("Error {what}: reading it back"), e);
                None
            }
        }
    }
}
