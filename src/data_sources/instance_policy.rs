//! Data source `dify_instance_policy`: the IAM policy a `dify_ec2_stack`'s instance profile needs, from the same
//! inputs as the stack, so the role's policy can exist before the stack's instances boot.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::aws::AwsClients;
use crate::framework::decode::decode;
use crate::framework::schema::{Attribute, Block, Schema};
use crate::framework::validate;
use crate::framework::value::{Type, Value};
use crate::framework::{AttrPath, Ctx, DataSource, Diagnostics};
use crate::boot::policy::{render, PolicyInputs};

pub struct InstancePolicy;

fn strings(config: &Value, attr: &str) -> BTreeSet<String> {
    decode::<Option<BTreeSet<String>>>(config.get(attr)).ok().flatten().unwrap_or_default()
}

#[async_trait]
impl DataSource for InstancePolicy {
    fn type_name(&self) -> &'static str {
        "dify_instance_policy"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("The IAM policy (JSON) the instance profile of a `dify_ec2_stack` needs: Session Manager (the actions AmazonSSMManagedInstanceCore grants), `secretsmanager:GetSecretValue` on the secrets it reads, `secretsmanager:PutSecretValue` on its shared secret only (more than one instance), read/write/delete and list on the `s3_storage` bucket, `s3:GetObject` on `s3://` release and Compose plugin objects, and ECR pull rights with an ECR registry. The same document as the stack's `instance_policy_json` for the same inputs; use this one for the role's policy, which must exist before the stack's instances boot. Attach it with `aws_iam_role_policy` (see the high-availability guide).")
                .attr(Attribute::string("id").computed().description("The stack name."))
                .attr(Attribute::string("name").required().description("The stack's `name`.").validate(validate::not_blank()))
                .attr(Attribute::string("region").optional().computed().description("The stack's region; default: the provider's."))
                .attr(Attribute::number("instance_count").optional().description("The stack's `instance_count` (default 1); more than one adds its shared secret (`dify/<name>/app-secrets`).").validate(validate::int_between(1, 10)))
                .attr(Attribute::string("s3_bucket").optional().description("The stack's `dify.s3_storage.bucket`: uploads and plugins."))
                .attr(Attribute::new("secret_arns", Type::set(Type::String)).optional().description("Secrets the instances read at boot: the `password_secret_arn` of `external_database` and `external_redis`, and the values of `secret_env`.").validate(validate::each(validate::prefixed("arn:"))))
                .attr(Attribute::new("object_urls", Type::set(Type::String)).optional().description("The stack's `dify.release_url` and `dify.compose_plugin_url`; `s3://bucket/key` ones get `s3:GetObject`, others need nothing."))
                .attr(Attribute::string("image_registry").optional().description("The stack's `dify.image_registry`; an ECR registry gets `ecr:GetAuthorizationToken` and pull rights on its repositories."))
                .attr(Attribute::string("json").computed().description("The policy document: compact, deterministic JSON.")),
        )
    }

    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let region = match config.get("region").as_str() {
            Some(r) => r.to_string(),
            None => match ctx.meta::<AwsClients>() {
                Ok(aws) => aws.region.clone(),
                Err(_) => {
                    diags.error_at(AttrPath::root("region"), "No region for the instance policy", "set `region`, or configure the provider's region.");
                    return None;
                }
            },
        };
        let name = config.get("name").as_str().unwrap_or_default().to_string();
        let inputs = PolicyInputs {
            stack_name: name.clone(),
            region: region.clone(),
            shared_secret: config.get("instance_count").as_i64().unwrap_or(1) > 1,
            bucket: config.get("s3_bucket").as_str().map(str::to_string),
            secret_arns: strings(config, "secret_arns"),
            object_urls: strings(config, "object_urls"),
            image_registry: config.get("image_registry").as_str().map(str::to_string),
        };
        let json = render(&inputs, crate::aws::partition(&region));
        let mut state = config.clone();
        state.set("id", Value::String(name));
        state.set("region", Value::String(region));
        state.set("json", Value::String(json));
        Some(state)
    }
}
