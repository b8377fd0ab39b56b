//! Conversions between framework types and protocol messages: schemas, diagnostics, attribute paths, DynamicValues.

use crate::framework::diag::{AttrPath, Diagnostic, Diagnostics, Severity, Step};
use crate::framework::schema::{Attribute, Block, IdentitySchema, NestedBlock, Nesting, Schema};
use crate::framework::value::{Type, Value};

use super::codec;
use super::proto::tfplugin6 as pb;

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema { version: s.version, block: Some(block(&s.block)) }
}

fn block(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: b.attributes.iter().map(attribute).collect(),
        block_types: b.blocks.iter().map(nested_block).collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecated,
    }
}

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    let mut description = a.description.clone();
    if let Some(msg) = &a.deprecation {
        description = format!("{description}\n\n**Deprecated**: {msg}");
    }
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: a.ty.to_json().to_string().into_bytes(),
        nested_type: None,
        description,
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecation.is_some(),
        write_only: a.write_only,
    }
}

fn nested_block(n: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode;
    let nesting = match n.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::Group => NestingMode::Group,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
    };
    pb::schema::NestedBlock {
        type_name: n.name.clone(),
        block: Some(block(&n.block)),
        nesting: nesting as i32,
        min_items: n.min_items,
        max_items: n.max_items,
    }
}

pub fn identity_schema(i: &IdentitySchema) -> pb::ResourceIdentitySchema {
    pb::ResourceIdentitySchema {
        version: i.version,
        identity_attributes: i
            .attributes
            .iter()
            .map(|a| pb::resource_identity_schema::IdentityAttribute {
                name: a.name.clone(),
                r#type: a.ty.to_json().to_string().into_bytes(),
                required_for_import: a.required_for_import,
                optional_for_import: !a.required_for_import,
                description: a.description.clone(),
            })
            .collect(),
    }
}

pub fn attribute_path(p: &AttrPath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    Step::Attr(a) => Selector::AttributeName(a.clone()),
                    Step::Key(k) => Selector::ElementKeyString(k.clone()),
                    Step::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub fn diagnostics(d: &Diagnostics) -> Vec<pb::Diagnostic> {
    d.0.iter().map(diagnostic).collect()
}

fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error,
            Severity::Warning => pb::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.path.as_ref().map(attribute_path),
    }
}

/// Decodes a DynamicValue (msgpack preferred, JSON accepted). An absent value is null.
pub fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostic> {
    let result = match dv {
        None => return Ok(Value::Null),
        Some(dv) if !dv.msgpack.is_empty() => codec::decode_msgpack(&dv.msgpack, ty),
        Some(dv) if !dv.json.is_empty() => codec::decode_json(&dv.json, ty),
        Some(_) => return Ok(Value::Null),
    };
    result.map_err(|e| Diagnostic::error(format!("Invalid {what} from Terraform"), e))
}

pub fn encode(v: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostic> {
    codec::encode_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue { msgpack, json: Vec::new() })
        .map_err(|e| Diagnostic::error(format!("Encoding {what}"), format!("provider bug: {e}")))
}
