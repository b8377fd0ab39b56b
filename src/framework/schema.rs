//! Schemas: attributes, nested blocks and the plan behaviour (defaults, replacement, validators) each attribute carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::diag::{AttrPath, Diagnostics};
use super::value::{Type, Value};

/// Checks one known, non-null value; reports problems at `path`.
pub type Validator = Arc<dyn Fn(&Value, &AttrPath, &mut Diagnostics) + Send + Sync>;

/// Checks a whole block's configuration (relations between attributes). Sees unknown values and must tolerate them.
pub type BlockCheck = Arc<dyn Fn(&Value, &AttrPath, &mut Diagnostics) + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    /// Like `Single`, but never null: an absent block is an object of nulls, so its attributes can have defaults.
    Group,
    List,
    Set,
    Map,
}

#[derive(Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub write_only: bool,
    /// Shown as a warning when the attribute is set; marks the attribute deprecated in the schema.
    pub deprecation: Option<String>,
    /// Planned when the configuration leaves the attribute null (makes it computed too).
    pub default: Option<Value>,
    /// A planned change to this attribute replaces the object.
    pub requires_replace: bool,
    /// A computed attribute keeps its prior value in plans instead of becoming "known after apply".
    pub use_state_for_unknown: bool,
    pub validators: Vec<Validator>,
}

impl Attribute {
    pub fn new(name: &str, ty: Type) -> Attribute {
        Attribute {
            name: name.to_string(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecation: None,
            default: None,
            requires_replace: false,
            use_state_for_unknown: false,
            validators: Vec::new(),
        }
    }
    pub fn string(name: &str) -> Attribute {
        Attribute::new(name, Type::String)
    }
    pub fn number(name: &str) -> Attribute {
        Attribute::new(name, Type::Number)
    }
    pub fn bool(name: &str) -> Attribute {
        Attribute::new(name, Type::Bool)
    }
    pub fn description(mut self, d: &str) -> Attribute {
        self.description = d.to_string();
        self
    }
    pub fn required(mut self) -> Attribute {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Attribute {
        self.optional = true;
        self
    }
    pub fn computed(mut self) -> Attribute {
        self.computed = true;
        self
    }
    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }
    pub fn write_only(mut self) -> Attribute {
        self.write_only = true;
        self
    }
    pub fn deprecated(mut self, message: &str) -> Attribute {
        self.deprecation = Some(message.to_string());
        self
    }
    pub fn default(mut self, v: Value) -> Attribute {
        self.default = Some(v);
        self.optional = true;
        self.computed = true;
        self
    }
    pub fn requires_replace(mut self) -> Attribute {
        self.requires_replace = true;
        self
    }
    pub fn use_state_for_unknown(mut self) -> Attribute {
        self.use_state_for_unknown = true;
        self
    }
    pub fn validate(mut self, v: Validator) -> Attribute {
        self.validators.push(v);
        self
    }
}

#[derive(Clone)]
pub struct NestedBlock {
    pub name: String,
    pub nesting: Nesting,
    pub block: Block,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn single(name: &str, block: Block) -> NestedBlock {
        NestedBlock { name: name.to_string(), nesting: Nesting::Single, block, min_items: 0, max_items: 0 }
    }
    pub fn group(name: &str, block: Block) -> NestedBlock {
        NestedBlock { name: name.to_string(), nesting: Nesting::Group, block, min_items: 0, max_items: 0 }
    }
    pub fn list(name: &str, block: Block) -> NestedBlock {
        NestedBlock { name: name.to_string(), nesting: Nesting::List, block, min_items: 0, max_items: 0 }
    }
    /// The block must be present (Terraform expresses this as one item at least and at most).
    pub fn required(mut self) -> NestedBlock {
        self.min_items = 1;
        self.max_items = 1;
        self
    }
    pub fn max_items(mut self, n: i64) -> NestedBlock {
        self.max_items = n;
        self
    }

    /// The type of this block's value inside its parent.
    pub fn ty(&self) -> Type {
        let inner = self.block.ty();
        match self.nesting {
            Nesting::Single | Nesting::Group => inner,
            Nesting::List => Type::list(inner),
            Nesting::Set => Type::set(inner),
            Nesting::Map => Type::map(inner),
        }
    }
}

#[derive(Clone, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    pub description: String,
    pub deprecated: bool,
    pub checks: Vec<BlockCheck>,
}

impl Block {
    pub fn new() -> Block {
        Block::default()
    }
    pub fn description(mut self, d: &str) -> Block {
        self.description = d.to_string();
        self
    }
    pub fn attr(mut self, a: Attribute) -> Block {
        self.attributes.push(a);
        self
    }
    pub fn block(mut self, b: NestedBlock) -> Block {
        self.blocks.push(b);
        self
    }
    pub fn check(mut self, c: BlockCheck) -> Block {
        self.checks.push(c);
        self
    }

    /// The object type a value of this block has.
    pub fn ty(&self) -> Type {
        let mut attrs = BTreeMap::new();
        for a in &self.attributes {
            attrs.insert(a.name.clone(), a.ty.clone());
        }
        for b in &self.blocks {
            attrs.insert(b.name.clone(), b.ty());
        }
        Type::Object(attrs)
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// A versioned schema for a provider, resource or data source.
#[derive(Clone, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(block: Block) -> Schema {
        Schema { version: 0, block }
    }
    /// Raises the schema version; the resource must then offer an upgrader from each earlier version.
    pub fn version(mut self, version: i64) -> Schema {
        self.version = version;
        self
    }
    pub fn ty(&self) -> Type {
        self.block.ty()
    }
}

/// One attribute of a resource's identity (protocol 6.9): what `import { identity = {...} }` takes.
#[derive(Clone)]
pub struct IdentityAttribute {
    pub name: String,
    pub ty: Type,
    pub description: String,
    pub required_for_import: bool,
}

#[derive(Clone)]
pub struct IdentitySchema {
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
}

impl IdentitySchema {
    pub fn ty(&self) -> Type {
        Type::Object(self.attributes.iter().map(|a| (a.name.clone(), a.ty.clone())).collect())
    }
}

/// Runs every validator, block check and deprecation warning of `block` over a configuration value.
/// Unknown values are skipped: they are checked again once known.
pub fn validate_block(block: &Block, value: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    if value.is_null() || value.is_unknown() {
        return;
    }
    for a in &block.attributes {
        let v = value.get(&a.name);
        let p = path.clone().attr(&a.name);
        if v.is_null() || v.is_unknown() {
            continue;
        }
        if let Some(msg) = &a.deprecation {
            diags.warning_at(p.clone(), format!("Argument `{}` is deprecated", a.name), msg.clone());
        }
        for check in &a.validators {
            check(v, &p, diags);
        }
    }
    for b in &block.blocks {
        let v = value.get(&b.name);
        let p = path.clone().attr(&b.name);
        match (b.nesting, v) {
            (Nesting::Single | Nesting::Group, v) => validate_block(&b.block, v, &p, diags),
            (_, Value::List(items)) | (_, Value::Set(items)) => {
                for (i, item) in items.iter().enumerate() {
                    validate_block(&b.block, item, &p.clone().index(i), diags);
                }
            }
            (_, Value::Map(items)) => {
                for (k, item) in items {
                    validate_block(&b.block, item, &p.clone().key(k), diags);
                }
            }
            _ => {}
        }
    }
    for check in &block.checks {
        check(value, path, diags);
    }
}

/// The configuration of a single-nested or at-most-one-item list block, or null when absent.
pub fn single_block<'a>(parent: &'a Value, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    match parent.get(name) {
        Value::List(items) | Value::Set(items) => items.first().unwrap_or(&NULL),
        other => other,
    }
}
