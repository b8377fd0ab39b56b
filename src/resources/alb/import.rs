//! Importing a `dify_alb` by load balancer ARN or name.

use crate::aws::elbv2::{find_load_balancer, Lookup};
use crate::aws::AwsClients;
use crate::framework::value::Value;
use crate::framework::{Ctx, Diagnostics, ResourceState};

use super::observe::{self, observe};
use super::resource_state;

/// The state of the load balancer `id` (an ARN or a name) and everything it owns.
pub async fn import(ctx: &Ctx, id: &str, identity: Option<&Value>, diags: &mut Diagnostics) -> Option<ResourceState> {
    let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
    let id = identity.and_then(|i| i.get("arn").as_str()).unwrap_or(id).trim().to_string();
    let lookup = if id.starts_with("arn:") { Lookup::Arn(&id) } else { Lookup::Name(&id) };
    let lb = match find_load_balancer(aws, lookup).await {
        Ok(Some(lb)) => lb,
        Ok(None) => {
            diags.error(format!("Cannot import ALB {id:?}"), format!("no load balancer with that ARN or name in {}; give the ARN or the name of an Application Load Balancer.", aws.region));
            return None;
        }
        Err(e) => {
            diags.error(format!("Error importing ALB ({id})"), e);
            return None;
        }
    };
    match observe(aws, lb, None).await {
        Ok(o) => Some(resource_state(observe::state(&Value::Null, &o, aws))),
        Err(e) => {
            diags.error(format!("Error importing ALB ({id})"), e);
            None
        }
    }
}
