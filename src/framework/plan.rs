//! The schema-driven part of planning a resource change: defaults, computed values, write-only nulling,
//! keep-prior-state-for-unknown and requires-replace. Resources refine the result in `Resource::modify_plan`.

use super::diag::AttrPath;
use super::schema::{Block, Nesting};
use super::value::Value;

pub struct PlannedChange {
    pub planned: Value,
    pub requires_replace: Vec<AttrPath>,
}

/// Plans `proposed` (Terraform's proposed new state) against `prior` (null on create) for `block`.
///
/// - A null configuration value with a default plans the default.
/// - On create, computed attributes the configuration leaves null are unknown ("known after apply").
/// - On update, they keep their prior value when nothing else changes or they use state for unknown;
///   otherwise they become unknown, since the update may change them.
/// - Write-only attributes are always planned null: they never reach state.
/// - Attributes marked requires-replace whose planned value differs from prior (or is unknown) are reported.
pub fn plan_block(block: &Block, prior: &Value, proposed: &Value, config: &Value) -> PlannedChange {
    let mut planned = proposed.clone();
    apply_defaults_and_write_only(block, &mut planned, config);
    let creating = prior.is_null();
    let changed = !creating && !same_ignoring_computed(block, prior, &planned, config);
    for a in &block.attributes {
        if !a.computed || !config.get(&a.name).is_null() || a.default.is_some() {
            continue;
        }
        let keep = !creating && (a.use_state_for_unknown || !changed);
        let v = if keep { prior.get(&a.name).clone() } else { Value::unknown() };
        planned.set(&a.name, v);
    }
    let mut requires_replace = Vec::new();
    if !creating {
        for a in block.attributes.iter().filter(|a| a.requires_replace) {
            let (before, after) = (prior.get(&a.name), planned.get(&a.name));
            if after.is_unknown() || before != after {
                requires_replace.push(AttrPath::root(&a.name));
            }
        }
    }
    PlannedChange { planned, requires_replace }
}

fn apply_defaults_and_write_only(block: &Block, planned: &mut Value, config: &Value) {
    if planned.is_null() || planned.is_unknown() {
        return;
    }
    for a in &block.attributes {
        if a.write_only {
            planned.set(&a.name, Value::Null);
        } else if let Some(default) = &a.default {
            if config.get(&a.name).is_null() {
                planned.set(&a.name, default.clone());
            }
        }
    }
    for b in block.blocks.iter().filter(|b| matches!(b.nesting, Nesting::Single | Nesting::Group)) {
        let mut inner = planned.get(&b.name).clone();
        if inner.is_null() && b.nesting == Nesting::Group {
            inner = Value::null_object(&b.block.ty());
        }
        apply_defaults_and_write_only(&b.block, &mut inner, config.get(&b.name));
        planned.set(&b.name, inner);
    }
}

/// Whether the configurable part of the object is unchanged (computed-only attributes are ignored).
fn same_ignoring_computed(block: &Block, prior: &Value, planned: &Value, config: &Value) -> bool {
    let attrs_same = block.attributes.iter().all(|a| {
        let computed_only = a.computed && config.get(&a.name).is_null() && a.default.is_none();
        computed_only || a.write_only || prior.get(&a.name) == planned.get(&a.name)
    });
    attrs_same && block.blocks.iter().all(|b| prior.get(&b.name) == planned.get(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::Attribute;
    use crate::object;

    fn block() -> Block {
        Block::new()
            .attr(Attribute::string("id").computed().use_state_for_unknown())
            .attr(Attribute::string("name").required().requires_replace())
            .attr(Attribute::number("size_gb").default(Value::int(20)))
            .attr(Attribute::string("arn").computed())
            .attr(Attribute::string("password").optional().write_only())
    }

    #[test]
    fn create_plans_defaults_and_unknown_computed_values() {
        let config = object! {"id" => Value::Null, "name" => Value::string("a"), "size_gb" => Value::Null, "arn" => Value::Null, "password" => Value::string("s")};
        let p = plan_block(&block(), &Value::Null, &config, &config);
        assert_eq!(p.planned.get("size_gb"), &Value::int(20));
        assert!(p.planned.get("id").is_unknown() && p.planned.get("arn").is_unknown());
        assert!(p.planned.get("password").is_null());
        assert!(p.requires_replace.is_empty());
    }

    #[test]
    fn update_keeps_state_for_unknown_and_reports_replacement() {
        let prior = object! {"id" => Value::string("x"), "name" => Value::string("a"), "size_gb" => Value::int(20), "arn" => Value::string("arn:1"), "password" => Value::Null};
        let config = object! {"id" => Value::Null, "name" => Value::string("b"), "size_gb" => Value::Null, "arn" => Value::Null, "password" => Value::Null};
        let proposed = object! {"id" => Value::string("x"), "name" => Value::string("b"), "size_gb" => Value::Null, "arn" => Value::string("arn:1"), "password" => Value::Null};
        let p = plan_block(&block(), &prior, &proposed, &config);
        assert_eq!(p.planned.get("id"), &Value::string("x"));
        assert!(p.planned.get("arn").is_unknown());
        assert_eq!(p.requires_replace, vec![AttrPath::root("name")]);
        let same = object! {"id" => Value::string("x"), "name" => Value::string("a"), "size_gb" => Value::Null, "arn" => Value::string("arn:1"), "password" => Value::Null};
        let p = plan_block(&block(), &prior, &same, &object! {"name" => Value::string("a")});
        assert_eq!(p.planned, prior);
    }
}
