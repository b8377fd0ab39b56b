//! Resource `dify_dns_record`: the Route 53 alias that points Dify's name at its load balancer (A, and AAAA on
//! request), waiting until Route 53 reports the change in sync.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
use serde::Deserialize;

use crate::aws::{route53, AwsClients};
use crate::framework::decode::decode;
use crate::framework::private::Private;
use crate::framework::schema::{Attribute, Block, IdentityAttribute, IdentitySchema, NestedBlock, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{timeouts, validate};
use crate::framework::{AttrPath, Ctx, Diagnostics, Resource, ResourceState};
use crate::object;

pub const TYPE_NAME: &str = "dify_dns_record";
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct DnsRecord;

#[derive(Deserialize, Clone, Debug)]
struct Alias {
    dns_name: String,
    zone_id: String,
    evaluate_target_health: bool,
}

#[derive(Deserialize, Clone, Debug)]
struct Spec {
    zone_id: String,
    name: String,
    alias: Alias,
    ipv6: bool,
    allow_overwrite: bool,
}

/// Route 53 names are absolute and lower case, with a trailing dot.
fn absolute(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with('.') {
        n
    } else {
        format!("{n}.")
    }
}

/// Route 53 writes `*` as `\052`; compare names in one spelling.
fn same_name(a: &str, b: &str) -> bool {
    absolute(&a.replace("\\052", "*")) == absolute(&b.replace("\\052", "*"))
}

fn zone_id_only(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

fn record_id(zone: &str, name: &str, ty: &str) -> String {
    format!("{}_{}_{}", zone_id_only(zone), name.trim_end_matches('.'), ty)
}

fn identity(zone: &str, name: &str, ty: &str) -> Value {
    object! {"zone_id" => Value::string(zone_id_only(zone)), "name" => Value::string(name), "type" => Value::string(ty)}
}

/// The A and AAAA records at `name`, in one call (Route 53 lists by name, then type).
async fn find(aws: &AwsClients, zone: &str, name: &str) -> Result<(Option<ResourceRecordSet>, Option<ResourceRecordSet>), String> {
    let records = route53::records_from(aws, zone, &absolute(name), RrType::A, 2).await?;
    let pick = |t: RrType| records.iter().find(|r| same_name(r.name(), name) && *r.r#type() == t).cloned();
    Ok((pick(RrType::A), pick(RrType::Aaaa)))
}

/// Whether the records found are exactly the alias (and AAAA twin) `spec` describes.
fn already_as_wanted(spec: &Spec, a: &ResourceRecordSet, aaaa: Option<&ResourceRecordSet>) -> bool {
    let same = |r: &ResourceRecordSet| {
        r.alias_target().is_some_and(|t| {
            t.dns_name().trim_end_matches('.').eq_ignore_ascii_case(spec.alias.dns_name.trim_end_matches('.'))
                && t.hosted_zone_id() == spec.alias.zone_id
                && t.evaluate_target_health() == spec.alias.evaluate_target_health
        })
    };
    same(a) && if spec.ipv6 { aaaa.is_some_and(same) } else { aaaa.is_none() }
}

fn alias_record(spec: &Spec, ty: RrType) -> Result<ResourceRecordSet, String> {
    let target = AliasTarget::builder()
        .hosted_zone_id(&spec.alias.zone_id)
        .dns_name(&spec.alias.dns_name)
        .evaluate_target_health(spec.alias.evaluate_target_health)
        .build()
        .map_err(|e| e.to_string())?;
    ResourceRecordSet::builder().name(absolute(&spec.name)).r#type(ty).alias_target(target).build().map_err(|e| e.to_string())
}

/// Sends `changes` and waits until Route 53 reports them INSYNC.
async fn change(ctx: &Ctx, aws: &AwsClients, zone: &str, changes: Vec<Change>, timeout: Duration) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    let batch = ChangeBatch::builder().set_changes(Some(changes)).comment("terraform-provider-dify").build().map_err(|e| e.to_string())?;
    route53::change_and_wait(&ctx.cancel, aws, zone, batch, timeout).await
}

fn change_of(action: ChangeAction, record: ResourceRecordSet) -> Result<Change, String> {
    Change::builder().action(action).resource_record_set(record).build().map_err(|e| e.to_string())
}

/// State from the records found; `base` supplies `allow_overwrite`, `timeouts` and the configured spelling of `name`.
fn record_state(base: &Value, zone: &str, a: &ResourceRecordSet, aaaa: Option<&ResourceRecordSet>) -> ResourceState {
    let name = base.get("name").as_str().map(str::to_string).unwrap_or_else(|| a.name().trim_end_matches('.').to_string());
    let alias = a.alias_target();
    let state = object! {
        "id" => Value::String(record_id(zone, &name, "A")),
        "zone_id" => Value::string(zone_id_only(zone)),
        "name" => Value::string(&name),
        "fqdn" => Value::string(a.name().trim_end_matches('.').replace("\\052", "*")),
        "alias" => object! {
            "dns_name" => alias.map(|t| Value::string(t.dns_name().trim_end_matches('.'))).unwrap_or(Value::Null),
            "zone_id" => alias.map(|t| Value::string(t.hosted_zone_id())).unwrap_or(Value::Null),
            "evaluate_target_health" => alias.map(|t| Value::Bool(t.evaluate_target_health())).unwrap_or(Value::Null),
        },
        "ipv6" => Value::Bool(aaaa.is_some()),
        "allow_overwrite" => match base.get("allow_overwrite") { Value::Bool(b) => Value::Bool(*b), _ => Value::Bool(false) },
        "timeouts" => base.get(timeouts::BLOCK_NAME).clone(),
    };
    ResourceState { state, private: Private::default(), identity: Some(identity(zone, &name, "A")) }
}

#[async_trait]
impl Resource for DnsRecord {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("A Route 53 alias record (A, and AAAA when `ipv6` is set) pointing Dify's name at its load balancer. Waits until the change is in sync.")
                .attr(Attribute::string("id").computed().use_state_for_unknown().description("`ZONEID_NAME_A`."))
                .attr(Attribute::string("zone_id").required().requires_replace().description("Hosted zone id (public or private).").validate(validate::not_blank()))
                .attr(Attribute::string("name").required().requires_replace().description("Record name, such as `dify.example.com`.").validate(validate::not_blank()))
                .attr(Attribute::string("fqdn").computed().use_state_for_unknown().description("The record's fully qualified name."))
                .attr(Attribute::bool("ipv6").default(Value::Bool(false)).description("Also create an AAAA alias (the load balancer must be dual-stack)."))
                .attr(Attribute::bool("allow_overwrite").default(Value::Bool(false)).description("Take over a record that already exists. Off by default: an existing record is an error that suggests `terraform import`, unless it is exactly the alias this resource would write (as an interrupted apply leaves it), which is taken over with a warning."))
                .block(
                    NestedBlock::single(
                        "alias",
                        Block::new()
                            .description("The load balancer to point at: `dify_alb.x.dns_name` and `dify_alb.x.zone_id`.")
                            .attr(Attribute::string("dns_name").required().description("DNS name of the target.").validate(validate::not_blank()))
                            .attr(Attribute::string("zone_id").required().description("Hosted zone id of the target (the load balancer's `zone_id`).").validate(validate::not_blank()))
                            .attr(Attribute::bool("evaluate_target_health").default(Value::Bool(true)).description("Answer only while the target is healthy (default true).")),
                    )
                    .required(),
                )
                .block(timeouts::block(&["create", "update", "delete"])),
        )
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        let attr = |n: &str, d: &str| IdentityAttribute { name: n.into(), ty: Type::String, description: d.into(), required_for_import: true };
        Some(IdentitySchema { version: 0, attributes: vec![attr("zone_id", "Hosted zone id."), attr("name", "Record name."), attr("type", "Record type (`A`).")] })
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let what = format!("creating Route 53 record ({})", spec.name);
        match find(aws, &spec.zone_id, &spec.name).await {
            // Exactly what this create would write (an earlier apply was interrupted after Route 53 took the change,
            // before Terraform recorded it): writing it again changes nothing, so take it over.
            Ok((Some(a), aaaa)) if already_as_wanted(&spec, &a, aaaa.as_ref()) => {
                diags.warning_at(
                    AttrPath::root("name"),
                    format!("Took over the existing record {}", a.name().trim_end_matches('.')),
                    "it already pointed at this load balancer exactly as configured (most likely an interrupted apply created it), so nothing about it changed.",
                );
            }
            Ok((Some(existing), _)) if !spec.allow_overwrite => {
                diags.error_at(
                    AttrPath::root("name"),
                    format!("A record {} already exists", existing.name().trim_end_matches('.')),
                    format!(
                        "this configuration did not create it. Adopt it with `terraform import {TYPE_NAME}.<name> {}`, or set allow_overwrite = true to replace it.",
                        record_id(&spec.zone_id, &spec.name, "A")
                    ),
                );
                return None;
            }
            Ok(_) => {}
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return None;
            }
        }
        self.apply(ctx, aws, Apply { spec: &spec, planned, had_aaaa: false, timeout: timeouts::get(planned, "create", CHANGE_TIMEOUT), what: &what }, diags).await
    }

    async fn read(&self, ctx: &Ctx, state: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let (zone, name) = (state.get("zone_id").as_str()?.to_string(), state.get("name").as_str()?.to_string());
        match find(aws, &zone, &name).await {
            Ok((Some(a), aaaa)) => Some(record_state(state, &zone, &a, aaaa.as_ref())),
            Ok((None, _)) => None,
            Err(e) if e.contains("NoSuchHostedZone") => None,
            Err(e) => {
                diags.error(format!("Error reading Route 53 record ({name})"), e);
                Some(ResourceState { state: state.clone(), private: private.clone(), identity: Some(identity(&zone, &name, "A")) })
            }
        }
    }

    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, _config: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let had_aaaa = prior.get("ipv6").as_bool() == Some(true);
        let what = format!("updating Route 53 record ({})", spec.name);
        self.apply(ctx, aws, Apply { spec: &spec, planned, had_aaaa, timeout: timeouts::get(planned, "update", CHANGE_TIMEOUT), what: &what }, diags).await
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &Private, diags: &mut Diagnostics) {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return };
        let (zone, name) = (prior.get("zone_id").as_str().unwrap_or_default().to_string(), prior.get("name").as_str().unwrap_or_default().to_string());
        let timeout = timeouts::get(prior, "delete", CHANGE_TIMEOUT);
        // A DELETE must repeat the record exactly as Route 53 holds it.
        let (a, aaaa) = match find(aws, &zone, &name).await {
            Ok(found) => found,
            Err(e) => return diags.error(format!("Error deleting Route 53 record ({name})"), e),
        };
        let changes: Result<Vec<Change>, String> = a.into_iter().chain(aaaa).map(|r| change_of(ChangeAction::Delete, r)).collect();
        let result = match changes {
            Ok(c) => change(ctx, aws, &zone, c, timeout).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            diags.error(format!("Error deleting Route 53 record ({name})"), e);
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, identity_value: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let parsed = match identity_value {
            Some(i) => Some((i.get("zone_id").as_str().unwrap_or_default().to_string(), i.get("name").as_str().unwrap_or_default().to_string(), i.get("type").as_str().unwrap_or("A").to_string())),
            None => {
                let mut parts = id.trim().splitn(2, '_');
                let zone = parts.next().unwrap_or_default().to_string();
                let rest = parts.next().unwrap_or_default();
                rest.rsplit_once('_').map(|(name, ty)| (zone, name.to_string(), ty.to_string()))
            }
        };
        let Some((zone, name, ty)) = parsed.filter(|(z, n, _)| !z.is_empty() && !n.is_empty()) else {
            diags.error(format!("Cannot import {id:?} as a {TYPE_NAME}"), "give ZONEID_NAME_TYPE, such as Z0123456789ABC_dify.example.com_A.");
            return None;
        };
        if ty != "A" {
            diags.error(format!("Cannot import a {ty} record as a {TYPE_NAME}"), "import the A record (ZONEID_NAME_A); its AAAA twin, if any, comes with it (ipv6 = true).");
            return None;
        }
        match find(aws, &zone, &name).await {
            Ok((Some(a), aaaa)) => Some(record_state(&object! {"name" => Value::string(&name)}, &zone, &a, aaaa.as_ref())),
            Ok((None, _)) => {
                diags.error(format!("Cannot import Route 53 record {name}"), format!("no A record named {name} in hosted zone {zone}."));
                None
            }
            Err(e) => {
                diags.error(format!("Error importing Route 53 record ({name})"), e);
                None
            }
        }
    }
}

/// What a create or update applies: the spec and the plan it was decoded from, whether the prior state had an AAAA
/// record, the timeout, and what the apply is doing, for errors.
struct Apply<'a> {
    spec: &'a Spec,
    planned: &'a Value,
    had_aaaa: bool,
    timeout: Duration,
    what: &'a str,
}

impl DnsRecord {
    /// UPSERTs the A (and AAAA) alias, removes an AAAA no longer wanted, waits INSYNC and reads the result back.
    async fn apply(&self, ctx: &Ctx, aws: &AwsClients, apply: Apply<'_>, diags: &mut Diagnostics) -> Option<ResourceState> {
        let Apply { spec, planned, had_aaaa, timeout, what } = apply;
        let mut changes = Vec::new();
        let build = |action: ChangeAction, ty: RrType| alias_record(spec, ty).and_then(|r| change_of(action, r));
        let wanted = [Some(build(ChangeAction::Upsert, RrType::A)), spec.ipv6.then(|| build(ChangeAction::Upsert, RrType::Aaaa))];
        for c in wanted.into_iter().flatten() {
            match c {
                Ok(c) => changes.push(c),
                Err(e) => {
                    diags.error(format!("Error {what}"), e);
                    return None;
                }
            }
        }
        if had_aaaa && !spec.ipv6 {
            if let Ok((_, Some(aaaa))) = find(aws, &spec.zone_id, &spec.name).await {
                match change_of(ChangeAction::Delete, aaaa) {
                    Ok(c) => changes.push(c),
                    Err(e) => diags.error(format!("Error {what}"), e),
                }
            }
        }
        if let Err(e) = change(ctx, aws, &spec.zone_id, changes, timeout).await {
            diags.error(format!("Error {what}"), e);
            return None;
        }
        match find(aws, &spec.zone_id, &spec.name).await {
            Ok((Some(a), aaaa)) => Some(record_state(planned, &spec.zone_id, &a, aaaa.as_ref())),
            Ok((None, _)) => {
                diags.error(format!("Error {what}"), "Route 53 accepted the change but the record is not there");
                None
            }
            Err(e) => {
                diags.error(format!("Error {what}: reading it back"), e);
                None
            }
        }
    }
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(DnsRecord)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_in_route53_spelling() {
        assert!(same_name("Dify.Example.com", "dify.example.com."));
        assert!(same_name("\\052.example.com.", "*.example.com"));
        assert_eq!(record_id("/hostedzone/Z1", "dify.example.com.", "A"), "Z1_dify.example.com_A");
    }
}
