//! The `dify_alb` list resource (`terraform query`): Application Load Balancers by name prefix and tags, each with
//! its identity and, when asked, its state.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::aws::{AwsClients, OpExt};
use crate::framework::decode::decode;
use crate::framework::resource::ListResult;
use crate::framework::schema::{Attribute, Block, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{Ctx, Diagnostic, Diagnostics, ListResource};

use super::observe::{self, observe};
use super::{identity_value, TYPE_NAME};

/// `terraform query` support: lists Application Load Balancers, filtered by name prefix and tags.
pub struct AlbList;

#[async_trait]
impl ListResource for AlbList {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("Finds Application Load Balancers to adopt with `terraform query -generate-config-out`.")
                .attr(Attribute::string("name_prefix").optional().description("Only load balancers whose name starts with this."))
                .attr(Attribute::new("tags", Type::map(Type::String)).optional().description("Only load balancers carrying all these tags.")),
        )
    }

    async fn list(&self, ctx: &Ctx, config: &Value, include_object: bool, limit: usize, diags: &mut Diagnostics) -> Vec<ListResult> {
        let Ok(aws) = ctx.meta::<AwsClients>().map_err(|d| diags.push(d)) else { return vec![] };
        let prefix = config.get("name_prefix").as_str().unwrap_or_default().to_string();
        let wanted: std::collections::BTreeMap<String, String> = decode(config.get("tags")).unwrap_or_default();
        let mut all = Vec::new();
        let mut marker = None;
        loop {
            let page = match aws.elbv2.describe_load_balancers().set_marker(marker).send().await.op("ELBv2 DescribeLoadBalancers", "") {
                Ok(p) => p,
                Err(e) => {
                    diags.error("Listing load balancers", e);
                    return vec![];
                }
            };
            all.extend(page.load_balancers().iter().filter(|lb| lb.r#type().map(|t| t.as_str()) == Some("application") && lb.load_balancer_name().unwrap_or_default().starts_with(&prefix)).cloned());
            marker = page.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        if !wanted.is_empty() {
            let mut keep = BTreeSet::new();
            for chunk in all.chunks(20) {
                let arns: Vec<String> = chunk.iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
                match aws.elbv2.describe_tags().set_resource_arns(Some(arns)).send().await.op("ELBv2 DescribeTags", "") {
                    Ok(out) => {
                        for d in out.tag_descriptions() {
                            let has = |k: &String, v: &String| d.tags().iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
                            if wanted.iter().all(|(k, v)| has(k, v)) {
                                keep.insert(d.resource_arn().unwrap_or_default().to_string());
                            }
                        }
                    }
                    Err(e) => {
                        diags.error("Listing load balancers", e);
                        return vec![];
                    }
                }
            }
            all.retain(|l| keep.contains(l.load_balancer_arn().unwrap_or_default()));
        }
        all.truncate(limit);
        let mut results = Vec::new();
        for lb in all {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            let name = lb.load_balancer_name().unwrap_or_default().to_string();
            let object = if include_object {
                match observe(aws, lb, None).await {
                    Ok(o) => Some(observe::state(&Value::Null, &o, aws)),
                    Err(e) => {
                        diags.push(Diagnostic::warning(format!("Reading ALB {name}"), e));
                        None
                    }
                }
            } else {
                None
            };
            results.push(ListResult { identity: identity_value(&arn), display_name: name, object });
        }
        results
    }
}

pub fn list_resource() -> Arc<dyn ListResource> {
    Arc::new(AlbList)
}
