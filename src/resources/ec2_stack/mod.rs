//! Resource `dify_ec2_stack`: Dify's compute — instances, launch template, security group, data-volume attachments
//! and target registrations as one resource — importable, and refusing topologies that would split Dify's data.

mod egress;
mod ops;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::{ec2, errors, tags, AwsClients, OpExt};
use crate::framework::decode::decode;
use crate::framework::private::Private;
use crate::framework::resource::PlanRequest;
use crate::framework::schema::{Attribute, Block, IdentityAttribute, IdentitySchema, NestedBlock, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{timeouts, validate};
use crate::boot;
use crate::framework::{AttrPath, Ctx, Diagnostic, Diagnostics, Resource, ResourceState};
use crate::object;

use self::ops::{converge, data_volume_of, observe, read_template, tear_down, Observed, Spec, STACK_TAG, SUBNETS_TAG};
use super::planned_tags_all;

pub const TYPE_NAME: &str = "dify_ec2_stack";
const CREATE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UPDATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Computed attributes that follow the instances.
const INSTANCE_LISTS: &[&str] = &["instance_ids", "private_ips", "availability_zones"];

pub struct Ec2Stack;

fn dify_block() -> NestedBlock {
    let service = |name: &str, d: &str| {
        NestedBlock::single(
            name,
            Block::new()
                .description(d)
                .attr(Attribute::string("host").required().description("Host name.").validate(validate::not_blank()))
                .attr(Attribute::number("port").optional().description("Port."))
                .attr(Attribute::string("username").optional().description("User name (databases)."))
                .attr(Attribute::string("database").optional().description("Database name (databases)."))
                .attr(Attribute::string("plugin_database").optional().description("The plugin daemon's database on the same server (Dify's `DB_PLUGIN_DATABASE`; databases; default `dify_plugin`). It must exist, or the user must be allowed to create it."))
                .attr(Attribute::string("password_secret_arn").optional().description("Secrets Manager secret holding the password, read at boot by the instance profile: no password passes through Terraform. Without it the service is used without a password. A failed read stops the boot.").validate(validate::prefixed("arn:")))
                .attr(Attribute::string("password_secret_key").optional().description("When the secret is a JSON object (as RDS-managed secrets are: `{\"username\": …, \"password\": …}`), the key holding the password, such as `password`."))
                .attr(Attribute::bool("tls").optional().description("Use TLS (Redis): `rediss://` for the Celery broker too.")),
        )
    };
    NestedBlock::single(
        "dify",
        Block::new()
            .description("How Dify runs on the instances: rendered into cloud-init user data (see `rendered_user_data`). No secret passes through it: the instances generate Dify's secrets on first boot and keep them on the data volume, and read external service passwords from Secrets Manager. A change replaces the instances one at a time, moving the data volume (see the upgrade guide).")
            .attr(Attribute::string("version").required().description("Dify release tag whose Compose files are used, such as `1.13.3` (never the moving main branch); with `release_url`, the release its tarball holds.").validate(validate::not_blank()))
            .attr(Attribute::string("url").optional().description("Dify's public URL; sets CONSOLE_WEB_URL, CONSOLE_API_URL, APP_WEB_URL, APP_API_URL, SERVICE_API_URL and FILES_URL consistently. `http://` gets a warning: login cookies are then not Secure."))
            .attr(Attribute::string("vector_store").default(Value::string("weaviate")).description("Dify's VECTOR_STORE.").validate(validate::one_of(boot::VECTOR_STORES)))
            .attr(Attribute::number("upload_limit_mb").default(Value::int(100)).description("Largest upload in MB; sets UPLOAD_FILE_SIZE_LIMIT and NGINX_CLIENT_MAX_BODY_SIZE together.").validate(validate::int_between(1, 10240)))
            .attr(Attribute::number("alb_idle_timeout").default(Value::int(600)).description("The load balancer's idle timeout; nginx's keep-alive and proxy timeouts are set above it so the ALB never reuses a connection nginx closed.").validate(validate::int_between(1, 4000)))
            .attr(Attribute::new("env", Type::map(Type::String)).optional().description("Extra entries for Dify's `.env`. Keys the provider manages are refused, with the list of them; so are keys that name a secret (`SMTP_PASSWORD`, `S3_SECRET_KEY`, `…_API_KEY`, `…_TOKEN`, `SENTRY_DSN`), which belong in `secret_env`."))
            .attr(Attribute::new("secret_env", Type::map(Type::String)).optional().description("Secret entries for Dify's `.env`: key → Secrets Manager secret ARN. Only the ARN passes through Terraform; each instance reads the value at boot with its instance profile (which needs `secretsmanager:GetSecretValue` on it) into a 0600 file on the data volume."))
            .attr(Attribute::new("image_overrides", Type::map(Type::String)).optional().description("Pin images Dify leaves on `latest`: Compose service name → image."))
            .attr(Attribute::string("vector_store_url").optional().description("URL of an external vector store shared by all instances (weaviate, qdrant, milvus)."))
            .attr(Attribute::new("cors_allow_origins", Type::list(Type::String)).optional().description("Origins whose pages may call Dify's APIs from a browser (a frontend on another domain, such as an Amplify app): each `https://host[:port]` or `http://host[:port]`, no path, or `[\"*\"]` alone. Sets WEB_API_CORS_ALLOW_ORIGINS and CONSOLE_CORS_ALLOW_ORIGINS (joined with `,`); without it Dify's default `*` stays."))
            .attr(Attribute::string("image_registry").optional().description("Pull every image from this registry instead of Docker Hub and the others: `host[:port][/path]`, such as an ECR pull-through cache `123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/docker-hub` or a mirror `registry.internal:5000/dify`. Every service of the release's compose file (all profiles) and of `image_overrides` is moved there with its path and tag: `langgenius/dify-api:1.13.3` → `<registry>/langgenius/dify-api:1.13.3`, `postgres:15-alpine` → `<registry>/library/postgres:15-alpine`, `quay.io/coreos/etcd:v3.5.5` → `<registry>/quay.io/coreos/etcd:v3.5.5`; an image already on the registry's host is kept. ECR is logged in to with the instance profile (`ecr:GetAuthorizationToken`, and pull rights on the repositories). See the closed-network guide."))
            .attr(Attribute::string("release_url").optional().description("Fetch the release's `docker/` directory as a tarball from `s3://bucket/key` (with the instance profile: `s3:GetObject`) or `https://…`, instead of cloning the `version` tag from GitHub. The tarball holds `docker/` at its top or under one directory (as GitHub's source archives do). Needs `release_sha256`."))
            .attr(Attribute::string("release_sha256").optional().description("SHA-256 of the `release_url` tarball in hex (`sha256sum FILE`). The instance checks it before unpacking; on a mismatch the boot stops with a console line and starts nothing."))
            .attr(Attribute::string("compose_plugin_url").optional().description("Where the instance gets the Docker Compose plugin binary when the image has no working `docker compose`: `s3://bucket/key` or `https://…`, instead of its GitHub release. An image with the plugin (or a distribution package of it) downloads nothing. Needs `compose_plugin_sha256`."))
            .attr(Attribute::string("compose_plugin_sha256").optional().description("SHA-256 of the `compose_plugin_url` binary in hex, checked before it is installed."))
            .block(service("external_database", "External PostgreSQL shared by all instances."))
            .block(service("external_redis", "External Redis shared by all instances."))
            .block(NestedBlock::single(
                "s3_storage",
                Block::new()
                    .description("S3 bucket for uploaded files, shared by all instances (access through the instance profile).")
                    .attr(Attribute::string("bucket").required().description("Bucket name."))
                    .attr(Attribute::string("region").optional().description("Bucket region.")),
            )),
    )
}

/// `dify.<attr>`, `dify.<block>.<attr>` or `dify.env["KEY"]` as an attribute path.
fn dify_path(attr: &str) -> AttrPath {
    match attr.split_once("[\"") {
        Some((map, key)) => AttrPath::root("dify").attr(map).key(key.trim_end_matches("\"]")),
        None => attr.split('.').fold(AttrPath::root("dify"), |path, step| path.attr(step)),
    }
}

/// The boot configuration a planned `dify` block (or its absence) asks for; `None` while parts are unknown.
fn planned_boot(planned: &Value) -> Option<boot::DifyConfig> {
    let dify = planned.get("dify");
    if dify.is_null() {
        return Some(boot::DifyConfig::default());
    }
    if !dify.is_wholly_known() {
        return None;
    }
    decode(dify).ok()
}

fn identity(name: &str) -> Value {
    object! {"name" => Value::string(name)}
}

/// The shared services a multi-instance stack needs, and which of them the configuration lacks.
fn missing_shared_services(config: &Value) -> Vec<&'static str> {
    let dify = config.get("dify");
    let mut missing = Vec::new();
    if dify.get("external_database").is_null() {
        missing.push("external_database");
    }
    if dify.get("external_redis").is_null() {
        missing.push("external_redis");
    }
    if dify.get("vector_store_url").is_null() {
        missing.push("vector_store_url");
    }
    if dify.get("s3_storage").is_null() {
        missing.push("s3_storage");
    }
    missing
}

/// A stack with no data volume and bundled services keeps Dify's data on root volumes that are deleted with their
/// instances: a warning at every plan, and a replacement of running instances refused, unless `allow_data_loss`.
fn check_data_survives(config: &Value, prior: &Value, replacing: bool, diags: &mut Diagnostics) {
    if !config.get("data_volume_ids").is_null() || !config.get("dify").is_wholly_known() || config.get("allow_data_loss").as_bool() == Some(true) {
        return;
    }
    let local = missing_shared_services(config);
    if local.is_empty() {
        return;
    }
    let what = format!("with no data_volume_ids, Dify's bundled services ({}) keep their data on the instances' root volumes, which are deleted with the instances", local.join(", "));
    if replacing && !prior.is_null() {
        diags.error_at(
            AttrPath::root("data_volume_ids"),
            "Replacing the instances would delete Dify's data",
            format!("this change replaces the instances, and {what}: every workspace, app and upload would be lost. Give each instance a dify_persistent_volume in data_volume_ids (its data then moves onto the volume at the next boot), or set allow_data_loss = true if the data is disposable."),
        );
    } else {
        diags.push(Diagnostic::warning("Dify's data dies with its instances", format!("{what}; any later change to `dify` or `ami_id` replaces them. Give each instance a dify_persistent_volume in data_volume_ids, or set allow_data_loss = true to say the data is disposable.")).at(AttrPath::root("data_volume_ids")));
    }
}

#[async_trait]
impl Resource for Ec2Stack {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        let list = |n: &str, d: &str| Attribute::new(n, Type::list(Type::String)).computed().description(d);
        Schema::new(
            Block::new()
                .description("Dify's compute: EC2 instances in private subnets from a launch template (IMDSv2, encrypted gp3 root, no public IP), their security group (the app port from the load balancer only), the data volume of each instance, and registration behind the load balancer. No SSH: use Session Manager.")
                .attr(Attribute::string("id").computed().use_state_for_unknown().description("The stack name."))
                .attr(Attribute::string("name").required().requires_replace().description("Stack name: instances are named after it (`name`, or `name-1`, `name-2`… when there are several) and every object carries the tag `dify:stack = name`.").validate(validate::not_blank()))
                .attr(Attribute::new("subnet_ids", Type::list(Type::String)).required().description("Private subnets; instance i goes to subnet i mod n, so two instances span two zones. The instances need a way out at boot: a subnet whose route table has no 0.0.0.0/0 route to a NAT gateway, NAT instance, internet gateway or transit gateway gets a warning at plan, naming it and the VPC endpoints a closed network would need.").validate(validate::each(validate::prefixed("subnet-"))))
                .attr(Attribute::number("instance_count").default(Value::int(1)).description("Number of instances, 1–10. More than one needs shared external services (see `dify`).").validate(validate::int_between(1, 10)))
                .attr(Attribute::string("instance_type").default(Value::string("t3.medium")).description("Instance type. Changes in place: each instance is deregistered, stopped, changed, started and registered again, one at a time."))
                .attr(Attribute::string("ami_id").optional().computed().use_state_for_unknown().description("Image id. Default: the latest Amazon Linux 2023 for the instance type's architecture, resolved at create and then kept, so a new AMI release never replaces instances; an explicit change replaces them one at a time, moving the data volume.").validate(validate::prefixed("ami-")))
                .attr(Attribute::number("root_volume_size_gb").default(Value::int(30)).description("Size of the encrypted gp3 root volume (GiB) for new instances.").validate(validate::int_between(8, 16384)))
                .attr(Attribute::string("iam_instance_profile").optional().description("Instance profile name. It needs the AmazonSSMManagedInstanceCore policy for Session Manager (and Secrets Manager read access for external service passwords; ECR pull rights with an ECR `dify.image_registry`; `s3:GetObject` on an `s3://` `dify.release_url` or `compose_plugin_url`)."))
                .attr(Attribute::string("key_name").optional().description("EC2 key pair. Discouraged: use Session Manager instead of SSH; the security group opens no SSH port either way."))
                .attr(Attribute::number("app_port").default(Value::int(80)).description("The port Dify's nginx listens on; the only ingress, from `alb_security_group_id`.").validate(validate::int_between(1, 65535)))
                .attr(Attribute::string("alb_security_group_id").optional().description("The load balancer's security group (`dify_alb.security_group_id`), allowed in on `app_port`.").validate(validate::prefixed("sg-")))
                .attr(Attribute::new("additional_security_group_ids", Type::set(Type::String)).optional().description("More security groups for the instances.").validate(validate::each(validate::prefixed("sg-"))))
                .attr(Attribute::new("data_volume_ids", Type::list(Type::String)).optional().description("One `dify_persistent_volume` per instance, in order, attached as /dev/sdf and mounted at /opt/dify-data. Each must be in its instance's zone. Never deleted with an instance, never force-detached: a change stops the instance, detaches, waits, attaches and starts it.").validate(validate::each(validate::prefixed("vol-"))))
                .attr(Attribute::bool("allow_data_loss").optional().description("Say that Dify's data is disposable: with no `data_volume_ids` and bundled services, the data lives on root volumes deleted with the instances, so plans warn, and a change that replaces the instances is refused unless this is true."))
                .attr(Attribute::new("target_group_arns", Type::set(Type::String)).optional().description("Target groups to register every instance with (`dify_alb.target_group_arn`). Instances are deregistered and drained before they stop. A refresh reads each group's registrations, so an instance deregistered outside Terraform is planned back.").validate(validate::each(validate::prefixed("arn:"))))
                .attr(Attribute::bool("wait_for_healthy").optional().computed().description("Wait until every target is healthy before the apply returns (default: true when target groups are set); fails at the timeout with the last reason AWS gave."))
                .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("Tags for every object, merged over the provider's `default_tags`."))
                .attr(Attribute::new("tags_all", Type::map(Type::String)).computed().description("All tags, `default_tags` included."))
                .attr(list("instance_ids", "Instance ids, by index."))
                .attr(list("private_ips", "Private IP addresses, by index."))
                .attr(list("availability_zones", "Availability zone of each instance, by index."))
                .attr(Attribute::string("security_group_id").computed().description("The instances' security group."))
                .attr(Attribute::string("launch_template_id").computed().description("The launch template."))
                .attr(Attribute::number("launch_template_version").computed().description("The launch template version instances launch from; each change makes a new one."))
                .attr(Attribute::string("rendered_user_data").computed().description("The cloud-init user data the instances boot with, rendered from the `dify` block, so plans show what changes. Holds no secret."))
                .attr(Attribute::string("user_data_sha256").computed().description("SHA-256 of `rendered_user_data`."))
                .block(dify_block())
                .block(timeouts::block(&["create", "update", "delete"])),
        )
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema { version: 0, attributes: vec![IdentityAttribute { name: "name".into(), ty: Type::String, description: "The stack name.".into(), required_for_import: true }] })
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        let count = match config.get("instance_count") {
            Value::Null => Some(1),
            v => v.as_i64(),
        };
        if let (Some(count), Some(volumes)) = (count, config.get("data_volume_ids").elements()) {
            if volumes.len() as i64 != count {
                diags.error_at(AttrPath::root("data_volume_ids"), "One data volume per instance", format!("instance_count is {count} but data_volume_ids lists {}; give exactly one volume per instance, in order.", volumes.len()));
            }
        }
        if let Some(subnets) = config.get("subnet_ids").elements() {
            if subnets.is_empty() {
                diags.error_at(AttrPath::root("subnet_ids"), "No subnets", "give at least one private subnet.");
            }
        }
        for key in config.get("tags").entries().into_iter().flat_map(|m| m.keys()) {
            if let Some(problem) = tags::metadata_key_problem(key) {
                diags.error_at(AttrPath::root("tags").key(key), format!("Invalid key {key:?} in `tags`"), problem);
            }
        }
        let dify = config.get("dify");
        if !dify.is_null() && dify.is_wholly_known() {
            if let Ok(c) = decode::<boot::DifyConfig>(dify) {
                for (attr, problem) in boot::check(&c) {
                    diags.error_at(dify_path(&attr), format!("Invalid value for `dify.{attr}`"), problem);
                }
            }
        }
        if count.is_some_and(|c| c > 1) {
            let missing = missing_shared_services(config);
            if !missing.is_empty() && config.get("dify").is_wholly_known() {
                diags.error_at(
                    AttrPath::root("instance_count"),
                    "Two Dify instances would split your data",
                    format!(
                        "with instance_count > 1 and Dify's bundled PostgreSQL, Redis, vector store and local file storage, every instance runs its own independent database behind one load balancer, and users see different data on each request. Either keep instance_count = 1 (with a standby documented in the guide), or point every instance at shared services in the `dify` block: missing {}.",
                        missing.join(", ")
                    ),
                );
            }
        }
    }

    async fn modify_plan(&self, ctx: &Ctx, plan: &mut PlanRequest<'_>, diags: &mut Diagnostics) {
        let aws = ctx.meta::<AwsClients>().ok();
        let (prior, config) = (plan.prior, plan.config);
        plan.planned.set("tags_all", planned_tags_all(config, aws));
        // The provider's default_tags reach the instances too; `tags` was checked at validate.
        let own = config.get("tags").entries().cloned().unwrap_or_default();
        for key in plan.planned.get("tags_all").entries().into_iter().flat_map(|m| m.keys()).filter(|k| !own.contains_key(*k)) {
            if let Some(problem) = tags::metadata_key_problem(key) {
                diags.push(Diagnostic::error(format!("Invalid key {key:?} in the provider's `default_tags`"), format!("the provider's default_tags put it on the stack's instances: {problem}")).at(AttrPath::root("tags_all").key(key)));
            }
        }
        plan.planned.set("id", plan.planned.get("name").clone());
        if config.get("wait_for_healthy").is_null() {
            let v = match plan.planned.get("target_group_arns") {
                Value::Null => Value::Bool(false),
                Value::Set(items) => Value::Bool(!items.is_empty()),
                _ => Value::unknown(),
            };
            plan.planned.set("wait_for_healthy", v);
        }
        if config.get("iam_instance_profile").is_null() {
            diags.push(Diagnostic::warning("No iam_instance_profile: Session Manager will not reach the instances", "set iam_instance_profile to a profile with the AmazonSSMManagedInstanceCore policy; the stack opens no SSH port.").at(AttrPath::root("iam_instance_profile")));
        }

        let count = plan.planned.get("instance_count").as_i64();
        let configured = plan.planned.clone();
        let changed = |a: &str| prior.get(a) != configured.get(a);
        match (planned_boot(&configured), configured.get("app_port").as_i64()) {
            (Some(c), Some(app_port)) => {
                if c.url.as_deref().is_some_and(|u| u.starts_with("http://")) {
                    diags.push(Diagnostic::warning("Dify's URL is plain http://", "Dify's login cookies are then not Secure; serve Dify over https:// (a certificate on the dify_alb).").at(AttrPath::root("dify").attr("url")));
                }
                let rendered = boot::render(&c, app_port);
                plan.planned.set("user_data_sha256", Value::String(boot::sha256_hex(&rendered)));
                plan.planned.set("rendered_user_data", Value::String(rendered));
            }
            _ => {
                plan.planned.set("user_data_sha256", Value::unknown());
                plan.planned.set("rendered_user_data", Value::unknown());
            }
        }
        let instances_present = prior.get("instance_ids").elements().map(|e| e.len() as i64);
        // Instances are replaced (one at a time) when the boot configuration or the image changes.
        let replaced = prior.get("user_data_sha256") != plan.planned.get("user_data_sha256") || changed("ami_id");
        let relaid = prior.is_null() || count.is_none() || instances_present != count || changed("instance_count") || replaced;
        check_data_survives(config, prior, replaced && instances_present.unwrap_or(0) > 0, diags);
        for attr in INSTANCE_LISTS {
            let v = if relaid { Value::unknown() } else { prior.get(attr).clone() };
            plan.planned.set(attr, v);
        }
        for attr in ["security_group_id", "launch_template_id"] {
            let v = if prior.get(attr).is_null() { Value::unknown() } else { prior.get(attr).clone() };
            plan.planned.set(attr, v);
        }
        let user_data_changed = prior.get("user_data_sha256") != plan.planned.get("user_data_sha256");
        let template_changed = user_data_changed || ["instance_type", "ami_id", "root_volume_size_gb", "iam_instance_profile", "key_name", "additional_security_group_ids"].iter().any(|a| changed(a));
        // A recreated security group or template (deleted outside Terraform) also makes a new template version.
        let parts_missing = prior.get("security_group_id").is_null() || prior.get("launch_template_id").is_null();
        let v = if prior.is_null() || template_changed || parts_missing || prior.get("launch_template_version").is_null() { Value::unknown() } else { prior.get("launch_template_version").clone() };
        plan.planned.set("launch_template_version", v);

        // Data volumes must be in their instances' zones; subnets that hand out public IPs, or have no way out, get a warning.
        let Some(aws) = aws else { return };
        let subnet_ids: Vec<String> = plan.planned.get("subnet_ids").elements().unwrap_or_default().iter().filter_map(|s| s.as_str().map(str::to_string)).collect();
        let volumes: Vec<Option<String>> = plan.planned.get("data_volume_ids").elements().unwrap_or_default().iter().map(|v| v.as_str().map(str::to_string)).collect();
        let subnets_known = !subnet_ids.is_empty() && subnet_ids.len() == plan.planned.get("subnet_ids").elements().map(|e| e.len()).unwrap_or(0);
        if !subnets_known || !(prior.is_null() || changed("subnet_ids") || changed("data_volume_ids")) {
            return;
        }
        let subnets = match ec2::describe_subnets(aws, subnet_ids.clone()).await {
            Ok(s) => s,
            Err(e) => return diags.error_at(AttrPath::root("subnet_ids"), "Checking the subnets", e),
        };
        egress::check(aws, &subnets, &configured, diags).await;
        let zone_of: BTreeMap<String, String> = subnets.iter().filter_map(|s| Some((s.subnet_id()?.to_string(), s.availability_zone()?.to_string()))).collect();
        for s in subnets.iter().filter(|s| s.map_public_ip_on_launch() == Some(true)) {
            diags.push(Diagnostic::warning(
                format!("Subnet {} assigns public IPs", s.subnet_id().unwrap_or_default()),
                "the stack's instances never get one (the launch template disables it), but Dify instances belong in private subnets behind the load balancer.",
            ).at(AttrPath::root("subnet_ids")));
        }
        let known: Vec<String> = volumes.iter().flatten().cloned().collect();
        if known.is_empty() {
            return;
        }
        let found = match ec2::describe_volumes(aws, known).await {
            Ok(v) => v,
            Err(e) => return diags.error_at(AttrPath::root("data_volume_ids"), "Checking the data volumes", e),
        };
        for (i, v) in volumes.iter().enumerate() {
            let Some(v) = v else { continue };
            let subnet = &subnet_ids[i % subnet_ids.len()];
            let (Some(vol_zone), Some(subnet_zone)) = (found.iter().find(|f| f.volume_id() == Some(v.as_str())).and_then(|f| f.availability_zone()), zone_of.get(subnet)) else { continue };
            if vol_zone != subnet_zone {
                diags.error_at(
                    AttrPath::root("data_volume_ids").index(i),
                    format!("Data volume {v} is in {vol_zone}, but instance {} goes to {subnet_zone}", i + 1),
                    format!("instance {} is placed in subnet {subnet} ({subnet_zone}); EBS volumes attach only within their zone. Create the volume in {subnet_zone}, or reorder subnet_ids.", i + 1),
                );
            }
        }
    }

    async fn create(&self, ctx: &Ctx, planned: &Value, _config: &Value, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "create", CREATE_TIMEOUT);
        // An interrupted create left objects tagged with the stack name: resume from them.
        let current = match observe(aws, &spec.name, &[], None, None, false).await {
            Ok(o) => o,
            Err(e) => {
                diags.error(format!("Error creating EC2 stack ({})", spec.name), e);
                return None;
            }
        };
        let result = converge(&ctx.cancel, aws, &spec, &current, &BTreeSet::new(), timeout).await;
        self.finish(aws, &spec, planned, &Value::Null, result, &format!("creating EC2 stack ({})", spec.name), diags).await
    }

    async fn read(&self, ctx: &Ctx, state: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let name = state.get("name").as_str()?.to_string();
        let ids: Vec<String> = state.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        match observe(aws, &name, &ids, state.get("security_group_id").as_str(), state.get("launch_template_id").as_str(), false).await {
            Ok(o) if o.instances.is_empty() && o.security_group.is_none() && o.launch_template_id.is_none() => None,
            Ok(o) => {
                let mut read = stack_state(state, &o, aws);
                let groups: BTreeSet<String> = decode(state.get("target_group_arns")).unwrap_or_default();
                let live: Vec<String> = o.instances.values().filter_map(|i| i.instance_id().map(str::to_string)).collect();
                match groups_serving(aws, &groups, &live).await {
                    Ok(kept) if kept != groups => read.set("target_group_arns", Value::Set(kept.iter().map(Value::string).collect())),
                    Ok(_) => {}
                    Err(e) => diags.error(format!("Error reading EC2 stack ({name})"), e),
                }
                Some(ResourceState { state: read, private: Private::default(), identity: Some(identity(&name)) })
            }
            Err(e) => {
                diags.error(format!("Error reading EC2 stack ({name})"), e);
                Some(ResourceState { state: state.clone(), private: Private::default(), identity: Some(identity(&name)) })
            }
        }
    }

    async fn update(&self, ctx: &Ctx, prior: &Value, planned: &Value, _config: &Value, _private: &Private, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let spec: Spec = decode(&planned.without_unknowns()).map_err(|d| diags.push(d)).ok()?;
        let timeout = timeouts::get(planned, "update", UPDATE_TIMEOUT);
        let ids: Vec<String> = prior.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        let what = format!("updating EC2 stack ({})", spec.name);
        let current = match observe(aws, &spec.name, &ids, prior.get("security_group_id").as_str(), prior.get("launch_template_id").as_str(), true).await {
            Ok(o) => o,
            Err(e) => {
                diags.error(format!("Error {what}"), e);
                return Some(ResourceState { state: prior.clone(), private: Private::default(), identity: Some(identity(&spec.name)) });
            }
        };
        let previous_groups: BTreeSet<String> = decode(prior.get("target_group_arns")).unwrap_or_default();
        let result = converge(&ctx.cancel, aws, &spec, &current, &previous_groups, timeout).await;
        self.finish(aws, &spec, planned, prior, result, &what, diags).await
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value, _private: &Private, diags: &mut Diagnostics) {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return };
        let name = prior.get("name").as_str().unwrap_or_default().to_string();
        let ids: Vec<String> = prior.get("instance_ids").elements().unwrap_or_default().iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        let timeout = timeouts::get(prior, "delete", DELETE_TIMEOUT);
        let o = match observe(aws, &name, &ids, prior.get("security_group_id").as_str(), prior.get("launch_template_id").as_str(), true).await {
            Ok(o) => o,
            Err(e) => return diags.error(format!("Error deleting EC2 stack ({name})"), e),
        };
        let groups: BTreeSet<String> = decode(prior.get("target_group_arns")).unwrap_or_default();
        if let Err(e) = tear_down(&ctx.cancel, aws, &o, &groups, timeout).await {
            diags.error(format!("Error deleting EC2 stack ({name})"), e);
        }
    }

    async fn import(&self, ctx: &Ctx, id: &str, identity_value: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let id = identity_value.and_then(|i| i.get("name").as_str()).unwrap_or(id).trim().to_string();
        let (name_hint, ids): (String, Vec<String>) = if id.starts_with("i-") {
            (String::new(), id.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        } else {
            (id.clone(), vec![])
        };
        let o = match observe(aws, &name_hint, &ids, None, None, false).await {
            Ok(o) => o,
            Err(e) => {
                diags.error(format!("Error importing EC2 stack ({id})"), e);
                return None;
            }
        };
        if o.instances.is_empty() {
            diags.error(format!("Cannot import EC2 stack {id:?}"), "no instances found: give the stack name (its instances carry the tag dify:stack = name) or a comma-separated list of instance ids (i-aaa,i-bbb).");
            return None;
        }
        let count = o.instances.len();
        let name = if !name_hint.is_empty() {
            name_hint
        } else {
            let first = o.instances.values().next().map(|i| tags::from_ec2(i.tags())).unwrap_or_default();
            let n = first.get(STACK_TAG).or_else(|| first.get(tags::NAME)).cloned().unwrap_or_else(|| "dify".into());
            if count > 1 {
                n.strip_suffix("-1").map(str::to_string).unwrap_or(n)
            } else {
                n
            }
        };
        let mut subnets: Vec<String> = Vec::new();
        for i in o.instances.values() {
            if let Some(s) = i.subnet_id() {
                if !subnets.iter().any(|x| x == s) {
                    subnets.push(s.to_string());
                }
            }
        }
        let first = o.instances.values().next();
        let template = match &o.launch_template_id {
            Some(lt) => read_template(aws, lt).await.unwrap_or_default(),
            None => None,
        };
        let profile = template
            .as_ref()
            .and_then(|t| t.profile.clone())
            .or_else(|| first.and_then(|i| i.iam_instance_profile()).and_then(|p| p.arn()).and_then(|arn| arn.rsplit('/').next()).map(str::to_string))
            .map(Value::String)
            .unwrap_or(Value::Null);
        let key = template.as_ref().and_then(|t| t.key.clone()).or_else(|| first.and_then(|i| i.key_name()).map(str::to_string)).map(Value::String).unwrap_or(Value::Null);
        let root_size = template.as_ref().map(|t| t.root_size).filter(|s| *s > 0).unwrap_or(30);
        let user_data = template.as_ref().and_then(|t| t.user_data.clone()).unwrap_or_else(|| boot::render(&boot::DifyConfig::default(), 80));
        if let Some(recorded) = o.launch_template_tags.get(SUBNETS_TAG) {
            subnets = recorded.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
        }
        let instance_ids: Vec<String> = o.instances.values().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        let target_groups = match registered_target_groups(aws, &instance_ids).await {
            Ok(t) => t,
            Err(e) => {
                diags.error(format!("Error importing EC2 stack ({id})"), e);
                return None;
            }
        };
        let base = object! {
            "name" => Value::string(&name),
            "subnet_ids" => Value::List(subnets.iter().map(Value::string).collect()),
            "instance_count" => Value::int(count as i64),
            "root_volume_size_gb" => Value::int(root_size),
            "app_port" => Value::int(80),
            "iam_instance_profile" => profile,
            "key_name" => key,
            "target_group_arns" => if target_groups.is_empty() { Value::Null } else { Value::Set(target_groups.iter().map(Value::string).collect()) },
            "user_data_sha256" => Value::String(boot::sha256_hex(&user_data)),
            "rendered_user_data" => Value::String(user_data),
        };
        Some(ResourceState { state: stack_state(&base, &o, aws), private: Private::default(), identity: Some(identity(&name)) })
    }
}

impl Ec2Stack {
    /// Reads the stack back after a converge; on failure records what exists (the apply reports the error) so
    /// nothing is orphaned.
    #[allow(clippy::too_many_arguments)]
    async fn finish(&self, aws: &AwsClients, spec: &Spec, planned: &Value, prior: &Value, result: Result<ops::Converged, String>, what: &str, diags: &mut Diagnostics) -> Option<ResourceState> {
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
}

/// The target groups any of `instances` is registered with (import only: it reads every target group's health).
/// The target groups of `groups` every instance of `instances` is registered with (not draining): a group an
/// instance has left (deregistered outside Terraform) or that is gone drops out, so the plan registers it again. One
/// DescribeTargetHealth per group; none without instances.
async fn groups_serving(aws: &AwsClients, groups: &BTreeSet<String>, instances: &[String]) -> Result<BTreeSet<String>, String> {
    if instances.is_empty() {
        return Ok(groups.clone());
    }
    let mut kept = BTreeSet::new();
    for tg in groups {
        let Some(health) = errors::found(aws.elbv2.describe_target_health().target_group_arn(tg).send().await.op("ELBv2 DescribeTargetHealth", tg))? else { continue };
        let registered = |id: &str| {
            health.target_health_descriptions().iter().any(|d| {
                d.target().and_then(|t| t.id()) == Some(id) && d.target_health().and_then(|h| h.state()) != Some(&aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum::Draining)
            })
        };
        if instances.iter().all(|i| registered(i)) {
            kept.insert(tg.clone());
        }
    }
    Ok(kept)
}

async fn registered_target_groups(aws: &AwsClients, instances: &[String]) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    let mut marker = None;
    loop {
        let page = aws.elbv2.describe_target_groups().set_marker(marker).send().await.op("ELBv2 DescribeTargetGroups", "")?;
        for tg in page.target_groups() {
            let Some(arn) = tg.target_group_arn() else { continue };
            let health = aws.elbv2.describe_target_health().target_group_arn(arn).send().await.op("ELBv2 DescribeTargetHealth", "")?;
            if health.target_health_descriptions().iter().any(|d| d.target().and_then(|t| t.id()).is_some_and(|id| instances.iter().any(|i| i == id))) {
                found.insert(arn.to_string());
            }
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(found);
        }
    }
}

/// State from what AWS holds; `base` (plan, prior state or import skeleton) supplies configuration-only values.
fn stack_state(base: &Value, o: &Observed, aws: &AwsClients) -> Value {
    let list = |f: &dyn Fn(&aws_sdk_ec2::types::Instance) -> Option<String>| Value::List(o.instances.values().map(|i| f(i).map(Value::String).unwrap_or(Value::Null)).collect());
    let first = o.instances.values().next();
    let all_tags = first.map(|i| tags::from_ec2(i.tags())).unwrap_or_default();
    let visible = tags::user_visible(&all_tags);
    let visible: BTreeMap<String, String> = visible.into_iter().filter(|(k, _)| !k.starts_with("aws:")).collect();
    let (own_tags, tags_all) = super::state_tags(base, &visible, aws);
    let port = base.get("app_port").as_i64().unwrap_or(80) as i32;
    let alb_sg = o.security_group.as_ref().and_then(|sg| {
        sg.ip_permissions().iter().filter(|p| p.from_port() == Some(port)).flat_map(|p| p.user_id_group_pairs()).find_map(|g| g.group_id().map(str::to_string))
    });
    let volumes: Vec<Option<String>> = o.instances.values().map(data_volume_of).collect();
    let data_volume_ids = if volumes.iter().all(Option::is_none) && base.get("data_volume_ids").is_null() {
        Value::Null
    } else {
        Value::List(volumes.into_iter().map(|v| v.map(Value::String).unwrap_or(Value::Null)).collect())
    };
    let mut state = base.clone();
    if state.is_null() {
        state = Value::Object(BTreeMap::new());
    }
    let name = base.get("name").clone();
    let set = |s: &mut Value, k: &str, v: Value| s.set(k, v);
    set(&mut state, "id", name);
    set(&mut state, "instance_ids", list(&|i| i.instance_id().map(str::to_string)));
    set(&mut state, "private_ips", list(&|i| i.private_ip_address().map(str::to_string)));
    set(&mut state, "availability_zones", list(&|i| i.placement().and_then(|p| p.availability_zone()).map(str::to_string)));
    if let Some(i) = first {
        set(&mut state, "instance_type", i.instance_type().map(|t| Value::string(t.as_str())).unwrap_or(Value::Null));
        set(&mut state, "ami_id", i.image_id().map(Value::string).unwrap_or(Value::Null));
    }
    if base.get("instance_type").is_null() && first.is_none() {
        set(&mut state, "instance_type", Value::string("t3.medium"));
    }
    set(&mut state, "alb_security_group_id", alb_sg.map(Value::String).unwrap_or(Value::Null));
    set(&mut state, "data_volume_ids", data_volume_ids);
    set(&mut state, "security_group_id", o.security_group.as_ref().and_then(|g| g.group_id()).map(Value::string).unwrap_or(Value::Null));
    set(&mut state, "launch_template_id", o.launch_template_id.clone().map(Value::String).unwrap_or(Value::Null));
    set(&mut state, "launch_template_version", o.launch_template_version.map(Value::int).unwrap_or(Value::Null));
    set(&mut state, "tags", own_tags);
    set(&mut state, "tags_all", tags_all);
    if state.get("wait_for_healthy").is_null() || state.get("wait_for_healthy").is_unknown() {
        let has_groups = state.get("target_group_arns").elements().is_some_and(|e| !e.is_empty());
        set(&mut state, "wait_for_healthy", Value::Bool(has_groups));
    }
    // Anything still unknown (a failed apply) is recorded as null.
    state.without_unknowns()
}

pub fn resource() -> Arc<dyn Resource> {
    Arc::new(Ec2Stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_need_every_shared_service() {
        let mut d = Diagnostics::new();
        let config = object! {"instance_count" => Value::int(2), "dify" => Value::Null, "data_volume_ids" => Value::Null, "subnet_ids" => Value::Null};
        Ec2Stack.validate(&config, &mut d);
        assert!(d.has_errors());
        assert!(d.0[0].detail.contains("external_database, external_redis, vector_store_url, s3_storage"));
    }
}
