//! Replacing an instance with one launched beside it while it still serves, and ready before it stops (pre-warmed).

use aws_sdk_ec2::types::{Instance, InstanceStateName};

use crate::aws::wait::{wait_until, During, Status};
use crate::aws::{ec2, elbv2};
use crate::boot;
use crate::log;

use super::observe::data_volume_of;
use super::rollout::{id_of, Rollout};
use super::template::{run_instance, LaunchFrom};

/// The line dify-bootstrap prints on the serial console, followed by the Dify version, once Docker is installed, the
/// release fetched and every image pulled, before it waits for its data volume: the interface with `src/boot/`.
pub const PREPARED: &str = "dify-bootstrap: DIFY-PREPARED";
/// The line dify-bootstrap prints on the serial console when it gives up, followed by why.
pub const FAILED: &str = "dify-bootstrap: FAILED:";

/// What an instance's console says about its boot so far.
#[derive(Debug, PartialEq)]
pub enum Readiness {
    Booting,
    Prepared,
    /// The failure line, from `FAILED` on.
    Failed(String),
}

/// Reads the console of an instance booting Dify `version`: the first `PREPARED <version>` or `FAILED` line decides
/// (the console prefixes each line with syslog's priority and time; a marker for another version is not ours).
pub fn readiness(console: &str, version: &str) -> Readiness {
    for line in console.lines() {
        if let Some((_, rest)) = line.split_once(PREPARED) {
            if rest.split_whitespace().next() == Some(version) {
                return Readiness::Prepared;
            }
        }
        if let Some(at) = line.find(FAILED) {
            return Readiness::Failed(line[at..].trim_end().to_string());
        }
    }
    Readiness::Booting
}

impl Rollout<'_> {
    /// Replaces instance `old` at `index` with one of the wanted generation, launched while `old` still serves.
    /// - With a data volume: launch the new instance (tagged with the volume, in the old one's subnet and so the
    ///   volume's zone) → wait until its console says `PREPARED <version>` → every other registered target healthy →
    ///   deregister and drain old → stop old → snapshot the volume (`snapshot_before_replace`) → detach (wait
    ///   `available`) → attach to new → register new → wait healthy → terminate old.
    /// - Without: launch → register → wait healthy (the health check is the readiness) → deregister and drain old →
    ///   terminate old.
    ///
    /// Until the old instance is taken out, a failure (a `FAILED` line on the new console, the timeout) terminates
    /// the new instance and leaves the old one serving untouched. After it, the new instance is terminated, the
    /// volume goes back to the old one, which is started and registered again, and the error names the step. The
    /// volume only ever leaves a stopped instance. A rerun after an interruption finishes from what the tags show
    /// (`retire_superseded`).
    pub(super) async fn replace(&self, from: &LaunchFrom, index: usize, old: &Instance) -> Result<String, String> {
        let (aws, spec, cancel, timeout) = (self.aws, self.spec, self.cancel, self.timeout);
        let old_id = id_of(old);
        let released = data_volume_of(old);
        // The replacement gets the volume the configuration names (normally the one the old instance holds).
        let volume = spec.data_volume(index).map(str::to_string).or_else(|| released.clone());
        log::info("replacing instance", &[("instance_id", old_id.clone().into()), ("index", (index as u64).into())]);

        let mut new_id = None;
        let mut step = String::from("launching the replacement");
        let warmed = async {
            let id = run_instance(aws, spec, index, from).await?;
            new_id = Some(id.clone());
            step = "starting the replacement".into();
            ec2::wait_instance(cancel, aws, &id, InstanceStateName::Running, timeout).await?;
            if volume.is_some() {
                log::info("waiting for the replacement to prepare while the old instance serves", &[("instance_id", id.clone().into()), ("serving", old_id.clone().into())]);
                step = "waiting for the replacement to prepare".into();
                if ec2::console_is_live(aws, &spec.instance_type).await? {
                    self.wait_prepared(&id).await?;
                } else {
                    // A Xen type's console shows the marker only after the boot is long over, or never: the volume
                    // moves now and the replacement finishes preparing (installs, fetches, pulls) while Dify is down.
                    log::warn(
                        "the replacement's instance type shows no live console output (Xen): not waiting for it to prepare, so its image pulls happen during the switch",
                        &[("instance_id", id.clone().into()), ("instance_type", spec.instance_type.clone().into())],
                    );
                }
                step = format!("waiting for the targets other than {old_id} to be healthy");
                self.others_healthy(&old_id).await?;
            } else {
                step = "waiting for the replacement to be healthy".into();
                self.register_healthy(&id).await?;
            }
            Ok::<String, String>(id)
        }
        .await;
        let id = match warmed {
            Ok(id) => id,
            Err(e) => {
                let gone = match &new_id {
                    Some(id) => {
                        self.abandon(id, volume.is_none()).await;
                        format!("{id} was terminated")
                    }
                    None => "no replacement was launched".into(),
                };
                return Err(format!("replacing instance {} ({old_id}) failed at {step}: {e}; {gone} and {old_id} serves on, untouched", index + 1));
            }
        };
        let Some(volume) = volume else {
            elbv2::deregister_and_drain(cancel, aws, self.previous_groups, &old_id, timeout).await?;
            ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&old_id), timeout).await?;
            return Ok(id);
        };

        let (mut stopped, mut moved, mut registered) = (false, false, false);
        step = format!("deregistering {old_id}");
        let forward = async {
            elbv2::deregister_and_drain(cancel, aws, self.previous_groups, &old_id, timeout).await?;
            step = format!("stopping {old_id}");
            stopped = true;
            self.stop_deregistered(old).await?;
            if let Some(v) = &released {
                step = format!("the pre-replace snapshot of {v}");
                self.snapshot_before_move(&old_id, v).await.map_err(|e| {
                    format!("{e}. Allow ec2:CreateSnapshot and ec2:CreateTags on the volume and snapshots, or set snapshot_before_replace = false to replace without a snapshot")
                })?;
                step = format!("detaching {v}");
                moved = true;
                self.detach(&old_id, v).await?;
            }
            step = format!("attaching {volume} to the replacement");
            self.attach(&id, &volume).await?;
            step = "registering the replacement".into();
            registered = true;
            self.register_healthy(&id).await
        }
        .await;
        match forward {
            Ok(()) => {
                ec2::terminate_and_wait(cancel, aws, std::slice::from_ref(&old_id), timeout).await?;
                Ok(id)
            }
            Err(e) => {
                // Roll back: the old instance gets its volume back and serves again.
                self.abandon(&id, registered).await;
                let mut restored = Vec::new();
                if let (true, Some(v)) = (moved, &released) {
                    let _ = self.wait_volume_available(v).await;
                    if let Err(e) = self.attach(&old_id, v).await {
                        restored.push(format!("re-attaching {v} failed too: {e}"));
                    }
                }
                if stopped {
                    restored.extend(self.serve_again(&old_id).await);
                } else if let Err(e) = elbv2::register_targets(aws, self.previous_groups, &old_id, spec.app_port).await {
                    restored.push(format!("registering {old_id} again failed too: {e}"));
                }
                let outcome = if restored.is_empty() { format!("rolled back: {id} was terminated, {old_id} has its data volume and serves again") } else { restored.join("; ") };
                Err(format!("replacing instance {} ({old_id}) failed at {step}: {e}; {outcome}", index + 1))
            }
        }
    }

    /// Waits until the console of the new instance `id` says the release is prepared; a `FAILED` line ends the wait
    /// with that line.
    async fn wait_prepared(&self, id: &str) -> Result<(), String> {
        let version = self.spec.dify.as_ref().map_or_else(|| boot::DifyConfig::default().version, |d| d.version.clone());
        wait_until(self.cancel, self.timeout, || async {
            Ok(match readiness(&ec2::console_output(self.aws, id).await?, &version) {
                Readiness::Prepared => Status::Done(()),
                Readiness::Failed(line) => return Err(format!("its console says {line:?}")),
                Readiness::Booting => Status::Pending(format!("no \"{PREPARED} {version}\" on its console yet")),
            })
        })
        .await
        .during(format_args!("waiting for {id} to print \"{PREPARED} {version}\" on its console"))
    }

    /// Takes a replacement that will not serve out of the target groups (if it was `registered`) and terminates it,
    /// best effort: the error that made it go is the one reported.
    async fn abandon(&self, id: &str, registered: bool) {
        if registered {
            let _ = elbv2::deregister_and_drain(self.cancel, self.aws, &self.spec.target_groups(), id, self.timeout).await;
        }
        let _ = ec2::terminate_and_wait(self.cancel, self.aws, &[id.to_string()], self.timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_marker_for_the_version_or_failure_line_decides() {
        let booting = "<13>Nov 29 20:20:01 dify-bootstrap: installing Docker\n";
        assert_eq!(readiness("", "1.14.0"), Readiness::Booting);
        assert_eq!(readiness(booting, "1.14.0"), Readiness::Booting);
        let prepared = format!("{booting}<13>Nov 29 20:21:07 dify-bootstrap: dify-bootstrap: DIFY-PREPARED 1.14.0\n");
        assert_eq!(readiness(&prepared, "1.14.0"), Readiness::Prepared);
        assert_eq!(readiness(&prepared, "1.14"), Readiness::Booting, "another version's marker is not ours");
        assert_eq!(readiness("dify-bootstrap: DIFY-PREPARED 1.14.0-rc1\n", "1.14.0"), Readiness::Booting);
        let failed = format!("{booting}<11>Nov 29 20:21:07 dify-bootstrap: dify-bootstrap: FAILED: docker pull langgenius/dify-api:1.14.0 failed\n");
        assert_eq!(readiness(&failed, "1.14.0"), Readiness::Failed("dify-bootstrap: FAILED: docker pull langgenius/dify-api:1.14.0 failed".into()));
        let later_failure = format!("{prepared}dify-bootstrap: FAILED: data volume vol-1 did not appear within 3600s\n");
        assert_eq!(readiness(&later_failure, "1.14.0"), Readiness::Prepared, "a failure after the marker is the volume wait's, not the preparation's");
    }
}
