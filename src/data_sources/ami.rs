//! Data source `dify_ami`: the latest Amazon Linux 2023 image for an architecture.

use async_trait::async_trait;
use serde::Serialize;

use crate::aws::ec2::latest_al2023;
use crate::aws::AwsClients;
use crate::framework::decode::encode;
use crate::framework::schema::{Attribute, Block, Schema};
use crate::framework::validate;
use crate::framework::value::Value;
use crate::framework::{AttrPath, Ctx, DataSource, Diagnostics};

pub struct Ami;

pub const DEFAULT_ARCHITECTURE: &str = "x86_64";
const ARCHITECTURES: &[&str] = &["x86_64", "arm64"];

#[derive(Serialize)]
struct State {
    id: String,
    architecture: String,
    name: String,
    creation_date: String,
}

#[async_trait]
impl DataSource for Ami {
    fn type_name(&self) -> &'static str {
        "dify_ami"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("The latest Amazon Linux 2023 image, the default operating system for Dify instances.")
                .attr(Attribute::string("id").computed().description("The image id (`ami-…`)."))
                .attr(
                    Attribute::string("architecture")
                        .optional()
                        .computed()
                        .description("`x86_64` (default) or `arm64` (Graviton instance types).")
                        .validate(validate::one_of(ARCHITECTURES)),
                )
                .attr(Attribute::string("name").computed().description("The image name."))
                .attr(Attribute::string("creation_date").computed().description("When the image was published (RFC 3339).")),
        )
    }

    async fn read(&self, ctx: &Ctx, config: &Value, diags: &mut Diagnostics) -> Option<Value> {
        let aws: &AwsClients = ctx.meta().map_err(|d| diags.push(d)).ok()?;
        let architecture = config.get("architecture").as_str().unwrap_or(DEFAULT_ARCHITECTURE).to_string();
        let image = match latest_al2023(aws, &architecture).await {
            Ok(i) => i,
            Err(e) => {
                diags.error_at(AttrPath::root("architecture"), "Finding the Amazon Linux 2023 image", e);
                return None;
            }
        };
        let state = State {
            id: image.image_id().unwrap_or_default().to_string(),
            architecture,
            name: image.name().unwrap_or_default().to_string(),
            creation_date: image.creation_date().unwrap_or_default().to_string(),
        };
        encode(&state, &self.schema().ty()).map_err(|d| diags.push(d)).ok()
    }
}
