//! Resource `dify_alb`: the HTTPS entry to Dify — security group, load balancer, target group with a Dify-correct
//! health check, HTTPS listener and HTTP→HTTPS redirect — importable and listable for `terraform query`.

mod converge;
mod import;
mod list;
mod listeners;
mod load_balancer;
mod observe;
mod security_group;
mod target_group;
mod teardown;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::{ec2, AwsClients};
use crate::framework::decode::decode;
use crate::framework::private::Private;
use crate::framework::resource::PlanRequest;
use crate::framework::schema::{Attribute, Block, IdentityAttribute, IdentitySchema, NestedBlock, Schema, Validator};
use crate::framework::value::{Type, Value};
use crate::framework::{timeouts, validate};
use crate::framework::{AttrPath, Ctx, Diagnostic, Diagnostics, Resource, ResourceState};
use crate::object;

use self::converge::{converge, Spec};
use self::observe::{observe, read_back, salvage, ReadBack};
use self::teardown::{remnants, tear_down, tear_down_remnants, Remnants};
use crate::aws::elbv2::{find_load_balancer, Lookup};
use super::planned_tags_all;

pub const TYPE_NAME: &str = "dify_alb";
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";
/// Dify's `/` answers 307 and `/health` is not routed to the API by its nginx; this path checks nginx and the API.
pub const HEALTH_CHECK_PATH: &str = "/console/api/ping";
const HEALTH_CHECK_INTERVAL: i64 = 15;
const HEALTH_CHECK_TIMEOUT: i64 = 5;
const CREATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const OPEN_CIDRS: &[&str] = &["0.0.0.0/0", "::/0"];

pub struct Alb;

pub use self::list::list_resource;

fn alb_name() -> Validator {
    Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        let Some(s) = v.as_str() else { return };
        let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let problem = if s.is_empty() || s.len() > 32 {
            Some(format!("{s:?} is {} characters; use 1–32", s.len()))
        } else if !ok_chars {
            Some(format!("{s:?} may only contain letters, digits and hyphens"))
        } else if s.starts_with('-') || s.ends_with('-') {
            Some(format!("{s:?} must not start or end with a hyphen"))
        } else if s.starts_with("internal-") {
            Some(format!("{s:?} must not start with \"internal-\" (AWS reserves it)"))
        } else {
            None
        };
        if let Some(problem) = problem {
            d.error_at(p.clone(), format!("Invalid load balancer name in `{p}`"), problem);
        }
    })
}

fn path_starts_with_slash() -> Validator {
    Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if !s.starts_with('/') {
                d.error_at(p.clone(), format!("Invalid value for `{p}`"), format!("{s:?} must be a path starting with \"/\", such as \"{HEALTH_CHECK_PATH}\"."));
            }
        }
    })
}

fn health_check_block() -> NestedBlock {
    NestedBlock::group(
        "health_check",
        Block::new()
            .description("How the target group checks instances. The defaults suit Dify.")
            .attr(Attribute::string("path").default(Value::string(HEALTH_CHECK_PATH)).description("Path checked; `/console/api/ping` checks Dify's nginx and API in one request.").validate(path_starts_with_slash()))
            .attr(Attribute::string("matcher").default(Value::string("200")).description("HTTP codes that count as healthy."))
            .attr(Attribute::number("interval").default(Value::int(HEALTH_CHECK_INTERVAL)).description("Seconds between checks (5–300).").validate(validate::int_between(5, 300)))
            .attr(Attribute::number("timeout").default(Value::int(HEALTH_CHECK_TIMEOUT)).description("Seconds before a check fails (2–120), less than `interval`.").validate(validate::int_between(2, 120)))
            .attr(Attribute::number("healthy_threshold").default(Value::int(2)).description("Passing checks before an instance is healthy (2–10).").validate(validate::int_between(2, 10)))
            .attr(Attribute::number("unhealthy_threshold").default(Value::int(3)).description("Failing checks before an instance is unhealthy (2–10).").validate(validate::int_between(2, 10))),
    )
}

fn identity_value(arn: &str) -> Value {
    object! {"arn" => Value::string(arn)}
}

fn resource_state(state: Value) -> ResourceState {
    let identity = state.get("arn").as_str().map(identity_value);
    ResourceState { state, private: Private::default(), identity }
}

#[async_trait]
impl Resource for Alb {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        let computed = |n: &str, d: &str| Attribute::string(n).computed().description(d);
        Schema::new(
            Block::new()
                .description("The HTTPS entry to Dify: an Application Load Balancer with its own security group (HTTPS only from the networks you allow), a target group with a health check that suits Dify, an HTTPS listener and an HTTP→HTTPS redirect.")
                .attr(Attribute::string("id").computed().use_state_for_unknown().description("The load balancer ARN."))
                .attr(Attribute::string("arn").computed().use_state_for_unknown().description("The load balancer ARN."))
                .attr(Attribute::string("name").required().requires_replace().description("Load balancer name: 1–32 letters, digits and hyphens. Also names its security group and target group.").validate(alb_name()))
                .attr(Attribute::bool("internal").default(Value::Bool(false)).requires_replace().description("An internal load balancer (reachable only inside the VPC) instead of an internet-facing one."))
                .attr(Attribute::string("vpc_id").required().requires_replace().description("The VPC.").validate(validate::prefixed("vpc-")))
                .attr(
                    Attribute::new("subnet_ids", Type::set(Type::String))
                        .required()
                        .description("At least two subnets in different availability zones (public subnets for an internet-facing ALB). Changes in place.")
                        .validate(validate::each(validate::prefixed("subnet-"))),
                )
                .attr(
                    Attribute::new("allowed_cidrs", Type::map(Type::set(Type::String)))
                        .optional()
                        .description("Networks allowed in, by label: `{ office_a = [\"203.0.113.10/32\"] }`. Each CIDR becomes an ingress rule on 443 (and on 80 for the redirect) described by its label. `0.0.0.0/0` and `::/0` need `allow_internet = true`.")
                        .validate(validate::each(validate::each(validate::cidr()))),
                )
                .attr(Attribute::new("allowed_security_group_ids", Type::set(Type::String)).optional().description("Security groups allowed in (for callers inside the VPC, such as Lambda behind an internal ALB).").validate(validate::each(validate::prefixed("sg-"))))
                .attr(
                    Attribute::new("allowed_prefix_list_ids", Type::set(Type::String))
                        .optional()
                        .description("Managed prefix lists allowed in, such as CloudFront's origin-facing list (`com.amazonaws.global.cloudfront.origin-facing`) for an ALB that is CloudFront's origin. Only on the port that serves (443 with a certificate, else 80), not on the redirect: AWS counts a list as its `max_entries` rules against the group's quota (60 by default; CloudFront's list counts 55).")
                        .validate(validate::each(validate::prefixed("pl-"))),
                )
                .attr(Attribute::bool("allow_internet").default(Value::Bool(false)).description("Must be true for `allowed_cidrs` to contain `0.0.0.0/0` or `::/0`: opening Dify to the whole internet is a decision, never a default. Prefix lists in `allowed_prefix_list_ids` are not checked against it."))
                .attr(Attribute::string("certificate_arn").optional().description("ACM certificate for the HTTPS listener on 443; port 80 then redirects to 443 (301). Without it: an HTTP listener on 80 that forwards, and a warning unless the load balancer is `internal`.").validate(validate::prefixed("arn:")))
                .attr(Attribute::new("additional_certificate_arns", Type::set(Type::String)).optional().description("More certificates for the HTTPS listener (SNI).").validate(validate::each(validate::prefixed("arn:"))))
                .attr(Attribute::string("ssl_policy").default(Value::string(DEFAULT_SSL_POLICY)).description("TLS policy of the HTTPS listener (TLS 1.3 and 1.2 by default)."))
                .attr(Attribute::number("target_port").default(Value::int(80)).description("Port Dify's nginx listens on, on the instances. A change replaces the target group inside the resource, create-before-destroy.").validate(validate::int_between(1, 65535)))
                .attr(Attribute::number("deregistration_delay").default(Value::int(30)).description("Seconds a deregistering instance keeps its connections (0–3600).").validate(validate::int_between(0, 3600)))
                .attr(Attribute::number("idle_timeout").default(Value::int(600)).description("Idle connection timeout in seconds (1–4000). 600 by default: Dify's blocking API calls and uploads outlast the AWS default of 60.").validate(validate::int_between(1, 4000)))
                .attr(Attribute::bool("deletion_protection").default(Value::Bool(false)).description("Refuse to delete the load balancer. Recommended for production; turn it off (and apply) before destroying."))
                .attr(Attribute::bool("drop_invalid_header_fields").default(Value::Bool(true)).description("Drop HTTP headers with invalid names before they reach Dify."))
                .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("Tags for every object, merged over the provider's `default_tags`."))
                .attr(Attribute::new("tags_all", Type::map(Type::String)).computed().description("All tags, `default_tags` included."))
                .attr(computed("dns_name", "DNS name of the load balancer."))
                .attr(computed("zone_id", "Route 53 hosted zone id of the load balancer, for alias records."))
                .attr(computed("url", "`https://<dns_name>` (or `http://` without a certificate)."))
                .attr(computed("security_group_id", "The load balancer's security group; the instances' security group allows this one in."))
                .attr(computed("target_group_arn", "The target group instances register with."))
                .attr(computed("https_listener_arn", "The HTTPS listener (null without a certificate)."))
                .attr(computed("http_listener_arn", "The HTTP listener (the redirect, or the forwarder without a certificate)."))
                .block(health_check_block())
                .block(NestedBlock::single(
                    "access_logs",
                    Block::new()
                        .description("Write access logs to S3.")
                        .attr(Attribute::string("bucket").required().description("S3 bucket (its policy must allow ELB log delivery).").validate(validate::not_blank()))
                        .attr(Attribute::string("prefix").optional().description("Key prefix.")),
                ))
                .block(timeouts::block(&["create", "update", "delete"])),
        )
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![IdentityAttribute { name: "arn".into(), ty: Type::String, description: "The load balancer ARN.".into(), required_for_import: true }],
        })
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(subnets) = config.get("subnet_ids").elements() {
            if subnets.len() < 2 && subnets.iter().all(|s| !s.is_unknown()) {
                diags.error_at(AttrPath::root("subnet_ids"), "An ALB needs at least two subnets", "give two or more subnets in different availability zones.");
            }
        }
        let allow_internet = config.get("allow_internet").as_bool();
        if let Some(labels) = config.get("allowed_cidrs").entries() {
            for (label, cidrs) in labels {
                let open = cidrs.elements().unwrap_or_default().iter().filter_map(Value::as_str).find(|c| OPEN_CIDRS.contains(c));
                if let (Some(open), Some(false) | None) = (open, allow_internet.or(if config.get("allow_internet").is_unknown() { Some(true) } else { None })) {
                    diags.error_at(
                        AttrPath::root("allowed_cidrs").key(label),
                        format!("`allowed_cidrs[\"{label}\"]` opens Dify to the whole internet"),
                        format!("{open} allows everyone. List your office or VPN networks instead, or set allow_internet = true to do this on purpose."),
                    );
                }
            }
        }
        // The security group's ingress is exactly these sources (rules added outside Terraform are removed): with none,
        // nothing reaches the load balancer.
        let none_allowed = ["allowed_cidrs", "allowed_security_group_ids", "allowed_prefix_list_ids"].iter().all(|attr| match config.get(attr) {
            Value::Null => true,
            v => v.elements().is_some_and(|e| e.is_empty()) || v.entries().is_some_and(|e| e.is_empty()),
        });
        if none_allowed {
            diags.push(Diagnostic::warning(
                "dify_alb lets no one in",
                "none of allowed_cidrs, allowed_security_group_ids or allowed_prefix_list_ids is set, so the load balancer's security group has no ingress rule and nothing can reach Dify. Set at least one of them.",
            ));
        }
        // Unset values take their defaults, which are known here; unknown ones are checked once known.
        let hc = config.get("health_check");
        let or_default = |attr: &str, default: i64| match hc.get(attr) {
            Value::Null => Some(default),
            v => v.as_i64(),
        };
        if let (Some(t), Some(i)) = (or_default("timeout", HEALTH_CHECK_TIMEOUT), or_default("interval", HEALTH_CHECK_INTERVAL)) {
            if t >= i {
                diags.error_at(AttrPath::root("health_check").attr("timeout"), "`health_check.timeout` must be shorter than its interval", format!("timeout {t} ≥ interval {i}; lower `timeout` or raise `interval`."));
            }
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
        let aws = ctx.meta::<AwsClients>().ok();
        let (prior, config) = (plan.prior, plan.config);
        plan.planned.set("tags_all", planned_tags_all(config, aws));

        let cert = plan.planned.get("certificate_arn").clone();
        // Plain HTTP inside the VPC (an internal ALB, reached by Lambda or as CloudFront's VPC origin) is a choice the
        // network already protects; on an internet-facing one cookies cross the internet in the clear.
        if cert.is_null() && plan.planned.get("internal").as_bool() == Some(false) {
            diags.push(Diagnostic::warning(
                "dify_alb without a certificate serves plain HTTP",
                "without certificate_arn the load balancer listens on port 80 only and Dify's login cookies travel unencrypted. Set certificate_arn to an ACM certificate for the domain.",
            ).at(AttrPath::root("certificate_arn")));
        }

        // Parts the load balancer owns: kept while they exist; unknown (so the update recreates them) when a
        // refresh found them gone, or when the change replaces them.
        let part = |attr: &str, replaced: bool| -> Value {
            let before = prior.get(attr);
            if prior.is_null() || replaced || before.is_null() {
                Value::unknown()
            } else {
                before.clone()
            }
        };
        // The load balancer is gone and a read kept the resource for what it left (`read_remnants`): a new load
        // balancer replaces it, after the destroy half of the replacement removes what is left.
        if !prior.is_null() && !plan.planned.is_null() && prior.get("dns_name").is_null() {
            for attr in ["id", "arn"] {
                plan.planned.set(attr, Value::unknown());
            }
            plan.requires_replace.push(AttrPath::root("arn"));
        }
        let port_changed = !prior.is_null() && prior.get("target_port") != plan.planned.get("target_port");
        for attr in ["dns_name", "zone_id", "security_group_id"] {
            plan.planned.set(attr, part(attr, false));
        }
        plan.planned.set("target_group_arn", part("target_group_arn", port_changed));
        plan.planned.set("http_listener_arn", part("http_listener_arn", false));
        let https = match &cert {
            Value::Null => Value::Null,
            Value::Unknown(_) => Value::unknown(),
            _ => part("https_listener_arn", false),
        };
        plan.planned.set("https_listener_arn", https);
        let scheme = match &cert {
            Value::Null => Some("http"),
            Value::String(_) => Some("https"),
            _ => None,
        };
        let url = match (scheme, plan.planned.get("dns_name").as_str()) {
            (Some(s), Some(dns)) => Value::String(format!("{s}://{dns}")),
            _ => Value::unknown(),
        };
        plan.planned.set("url", url);

        // Subnets must span two availability zones (checked when they change).
        if let (Some(aws), Some(subnets)) = (aws, plan.planned.get("subnet_ids").elements()) {
            let ids: Vec<String> = subnets.iter().filter_map(|s| s.as_str().map(str::to_string)).collect();
            if ids.len() == subnets.len() && ids.len() >= 2 && prior.get("subnet_ids") != plan.planned.get("subnet_ids") {
                match ec2::describe_subnets(aws, ids.clone()).await {
                    Ok(subnets) => {
                        let zones: BTreeSet<&str> = subnets.iter().filter_map(|s| s.availability_zone()).collect();
                        let vpc = plan.planned.get("vpc_id").as_str();
                        if let Some(other) = subnets.iter().find(|s| vpc.is_some() && s.vpc_id() != vpc) {
                            diags.error_at(
                                AttrPath::root("subnet_ids"),
                                format!("Subnet {} is not in VPC {}", other.subnet_id().unwrap_or_default(), vpc.unwrap_or_default()),
                                "give subnets of the load balancer's VPC.",
                            );
                        } else if zones.len() < 2 {
                            diags.error_at(
                                AttrPath::root("subnet_ids"),
                                "The subnets are all in one availability zone",
                                format!("an ALB needs subnets in at least two zones; these are all in {}.", zones.iter().next().unwrap_or(&"one zone")),
                            );
                        }
                    }
                    Err(e) => diags.error_at(AttrPath::root("subnet_ids"), "Checking the subnets", e),
                }
            }
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "create", CREATE_TIMEOUT);
        let done = match converge(&ctx.cancel, aws, &spec, None, timeout).await {
            Ok(c) => c,
            Err(e) => {
                diags.error(format!("Error creating ALB ({})", spec.name), e);
                return salvage(&ctx.cancel, aws, &spec.name, planned, diags).await;
            }
        };
        read_back(&ctx.cancel, aws, ReadBack { arn: &done.lb_arn, target_group: Some(&done.target_group_arn), base: planned, what: &format!("creating ALB ({})", spec.name) }, diags).await
    }

    async fn read(&self, ctx: &Ctx, state: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let arn = state.get("arn").as_str()?.to_string();
        let lb = match find_load_balancer(aws, Lookup::Arn(&arn)).await {
            Ok(Some(lb)) => lb,
            Ok(None) => return self.read_remnants(aws, &arn, state, private, diags).await,
            Err(e) => {
                diags.error(format!("Error reading ALB ({arn})"), e);
                return Some(ResourceState { state: state.clone(), private: private.clone(), identity: Some(identity_value(&arn)) });
            }
        };
        match observe(aws, lb, state.get("target_group_arn").as_str()).await {
            Ok(o) => Some(resource_state(observe::state(state, &o, aws))),
            Err(e) => {
                diags.error(format!("Error reading ALB ({arn})"), e);
                Some(ResourceState { state: state.clone(), private: private.clone(), identity: Some(identity_value(&arn)) })
            }
        }
    }

    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, _config: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let arn = prior.get("arn").as_str().unwrap_or_default().to_string();
        let timeout = timeouts::get(planned, "update", UPDATE_TIMEOUT);
        let what = format!("updating ALB ({})", spec.name);
        let current = match find_load_balancer(aws, Lookup::Arn(&arn)).await {
            Ok(Some(lb)) => match observe(aws, lb, prior.get("target_group_arn").as_str()).await {
                Ok(o) => Some(o),
                Err(e) => {
                    diags.error(format!("Error {what}"), e);
                    return Some(resource_state(prior.clone()));
                }
            },
            Ok(None) => None,
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return Some(resource_state(prior.clone()));
            }
        };
        match converge(&ctx.cancel, aws, &spec, current.as_ref(), timeout).await {
            Ok(done) => read_back(&ctx.cancel, aws, ReadBack { arn: &done.lb_arn, target_group: Some(&done.target_group_arn), base: planned, what: &what }, diags).await,
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                read_back(&ctx.cancel, aws, ReadBack { arn: &arn, target_group: prior.get("target_group_arn").as_str(), base: prior, what: &what }, diags).await
            }
        }
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &Private, diags: &mut Diagnostics) {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return };
        let arn = prior.get("arn").as_str().unwrap_or_default().to_string();
        let name = prior.get("name").as_str().unwrap_or_default().to_string();
        let timeout = timeouts::get(prior, "delete", DELETE_TIMEOUT);
        let lb = match find_load_balancer(aws, Lookup::Arn(&arn)).await {
            Ok(Some(lb)) => lb,
            // Gone already (an interrupted destroy): finish with what it left.
            Ok(None) => {
                if let Err(e) = tear_down_remnants(&ctx.cancel, aws, &Remnants::recorded(prior), timeout).await {
                    diags.error(format!("Error deleting ALB ({name})"), e);
                }
                return;
            }
            Err(e) => return diags.error(format!("Error deleting ALB ({name})"), e),
        };
        let o = match observe(aws, lb, prior.get("target_group_arn").as_str()).await {
            Ok(o) => o,
            Err(e) => return diags.error(format!("Error deleting ALB ({name})"), e),
        };
        if o.lb_attributes.get("deletion_protection.enabled").map(String::as_str) == Some("true") {
            diags.error_at(
                AttrPath::root("deletion_protection"),
                format!("ALB ({name}) has deletion protection"),
                "it was not deleted. To delete it, set deletion_protection = false, run terraform apply, then destroy. The provider never turns protection off by itself.",
            );
            return;
        }
        if let Err(e) = tear_down(&ctx.cancel, aws, &o, timeout).await {
            diags.error(format!("Error deleting ALB ({name})"), e);
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, identity: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        import::import(ctx, id, identity, diags).await
    }
}

impl Alb {
    /// The read of a resource whose load balancer is gone: gone too when nothing it owned is left; otherwise kept,
    /// with what is gone empty, so a plan replaces it (`modify_plan`) and a destroy deletes what is left.
    async fn read_remnants(&self, aws: &AwsClients, arn: &str, state: &Value, private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        match remnants(aws, &Remnants::recorded(state)).await {
            Ok(rest) if rest.is_empty() => None,
            Ok(rest) => {
                let mut kept = state.clone();
                for attr in ["dns_name", "zone_id", "url", "http_listener_arn", "https_listener_arn"] {
                    kept.set(attr, Value::Null);
                }
                kept.set("target_group_arn", rest.target_group_arn.map(Value::String).unwrap_or(Value::Null));
                kept.set("security_group_id", rest.security_group_id.map(Value::String).unwrap_or(Value::Null));
                Some(resource_state(kept))
            }
            Err(e) => {
                diags.error(format!("Error reading ALB ({arn})"), e);
                Some(ResourceState { state: state.clone(), private: private.clone(), identity: Some(identity_value(arn)) })
            }
        }
    }
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(Alb)
}
