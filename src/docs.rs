//! Registry documentation generated from the provider's own schemas and `examples/`, so docs never drift from code.

use std::fmt::Write;

use crate::framework::schema::{Attribute, Block, Nesting, Schema};
use crate::framework::value::Type;
use crate::framework::Provider;

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn attribute_line(a: &Attribute) -> String {
    let mut flags = vec![type_name(&a.ty)];
    if a.sensitive {
        flags.push("Sensitive".into());
    }
    if a.write_only {
        flags.push("Write-only".into());
    }
    if a.deprecation.is_some() {
        flags.push("Deprecated".into());
    }
    let mut line = format!("- `{}` ({}) {}", a.name, flags.join(", "), a.description);
    if let Some(d) = &a.default {
        if let Ok(json) = d.to_json() {
            let _ = write!(line, " Default: `{json}`.");
        }
    }
    if a.requires_replace {
        line.push_str(" Changing it replaces the object.");
    }
    if let Some(msg) = &a.deprecation {
        let _ = write!(line, " **Deprecated**: {msg}");
    }
    if let Type::Object(attrs) = a.ty.clone() {
        line.push_str(" Attributes: ");
        line.push_str(&attrs.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "));
        line.push('.');
    } else if let Type::List(inner) | Type::Set(inner) = &a.ty {
        if let Type::Object(attrs) = inner.as_ref() {
            line.push_str(" Each element has: ");
            line.push_str(&attrs.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "));
            line.push('.');
        }
    }
    line
}

fn render_block(out: &mut String, block: &Block, anchor: &str) {
    let groups: [(&str, Box<dyn Fn(&Attribute) -> bool>); 3] = [
        ("Required", Box::new(|a: &Attribute| a.required)),
        ("Optional", Box::new(|a: &Attribute| a.optional)),
        ("Read-Only", Box::new(|a: &Attribute| a.computed && !a.optional && !a.required)),
    ];
    for (title, pick) in groups.iter() {
        let attrs: Vec<&Attribute> = block.attributes.iter().filter(|a| pick(a)).collect();
        let blocks: Vec<_> = if *title == "Optional" { block.blocks.iter().collect() } else { vec![] };
        if attrs.is_empty() && blocks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {title}\n");
        for a in attrs {
            let _ = writeln!(out, "{}", attribute_line(a));
        }
        for b in &blocks {
            let kind = match b.nesting {
                Nesting::Single | Nesting::Group => "Block".to_string(),
                Nesting::List if b.max_items == 1 => "Block, at most one".to_string(),
                _ => "Block list".to_string(),
            };
            let _ = writeln!(out, "- `{}` ({kind}) {} (see [below for nested schema](#nestedblock--{anchor}{}))", b.name, b.block.description, b.name);
        }
        out.push('\n');
    }
    for b in &block.blocks {
        let _ = writeln!(out, "<a id=\"nestedblock--{anchor}{}\"></a>\n### Nested Schema for `{}`\n", b.name, b.name);
        render_block(out, &b.block, &format!("{anchor}{}--", b.name));
    }
}

fn example(path: &str) -> Option<String> {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).ok()
}

fn page(kind: &str, name: &str, schema: &Schema, example_path: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "---\npage_title: \"{name} {kind} - dify\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n", schema.block.description);
    let _ = writeln!(out, "# {name} ({kind})\n\n{}\n", schema.block.description);
    if let Some(ex) = example(example_path) {
        let _ = writeln!(out, "## Example Usage\n\n```terraform\n{}```\n", ex);
    }
    let _ = writeln!(out, "<!-- schema generated from the provider; edit the code, then run `make docs` -->\n## Schema\n");
    render_block(&mut out, &schema.block, "");
    out
}

/// The Terraform versions the tests run on (`make test`: tests/integration/compat.rs for the older ones) and what
/// needs a newer one; written into docs/index.md before the schema.
pub const TERRAFORM_VERSIONS_DOC: &str = "## Terraform versions

Tested on Terraform 1.6.6, 1.9.8, 1.12.2 and 1.15.5. Every test runs on 1.15.5. On each older version the dev \
environment is initialised from a mirror, applied, planned again with no changes, imported again (`terraform import` \
by id, then an `import` block: by `id` on 1.6.6 and 1.9.8, by `identity` on 1.12.2) and destroyed. \
Other versions are not tested. OpenTofu speaks the same plugin protocol (version 6) but is not tested here.

Some features need a newer Terraform than the oldest tested one:

| Feature | Needs |
|---|---|
| Resources, data sources, `terraform import` and `import` blocks by `id` | any tested version (1.6.6 or later) |
| `import` blocks by `identity` | Terraform 1.12 or later |
| `terraform query` with the [`dify_alb` list resource](list-resources/alb.md) | Terraform 1.14 or later |
| Write-only attributes | none: this provider has none (secrets reach instances as Secrets Manager ARNs) |

";

/// Every registry page: (path under docs/, content).
pub fn pages(provider: &dyn Provider) -> Vec<(String, String)> {
    let mut pages = Vec::new();
    let mut index = page("Provider", "dify", &provider.schema(), "examples/provider/provider.tf");
    index = index.replacen("# dify (Provider)", "# Dify Provider", 1);
    index = index.replacen("<!-- schema generated", &format!("{TERRAFORM_VERSIONS_DOC}<!-- schema generated"), 1);
    pages.push(("index.md".to_string(), index));
    let listable: Vec<&'static str> = provider.list_resources().iter().map(|l| l.type_name()).collect();
    for d in provider.data_sources() {
        let short = d.type_name().trim_start_matches("dify_");
        pages.push((format!("data-sources/{short}.md"), page("Data Source", d.type_name(), &d.schema(), &format!("examples/data-sources/{}/data-source.tf", d.type_name()))));
    }
    for r in provider.resources() {
        let short = r.type_name().trim_start_matches("dify_");
        let mut content = page("Resource", r.type_name(), &r.schema(), &format!("examples/resources/{}/resource.tf", r.type_name()));
        if let Some(import) = example(&format!("examples/resources/{}/import.sh", r.type_name())) {
            let _ = write!(content, "## Import\n\n```shell\n{import}```\n");
        }
        if r.type_name() == "dify_ec2_stack" {
            let _ = write!(content, "\n{}", crate::boot::ENV_KEYS_DOC);
        }
        if listable.contains(&r.type_name()) {
            if let Some(query) = example(&list_example(r.type_name())) {
                let _ = write!(content, "\n## Finding existing ones with `terraform query`\n\nWith Terraform 1.14 or later, through the [`{}` list resource](../list-resources/{short}.md):\n\n```terraform\n{query}```\n", r.type_name());
            }
        }
        pages.push((format!("resources/{short}.md"), content));
    }
    for l in provider.list_resources() {
        let short = l.type_name().trim_start_matches("dify_");
        let mut content = page("List Resource", l.type_name(), &l.schema(), &list_example(l.type_name()));
        content = content.replacen(
            "## Example Usage",
            &format!("Requires Terraform 1.14 or later (`terraform query`). Each result can be adopted as a [`{}` resource](../resources/{short}.md).\n\n## Example Usage", l.type_name()),
            1,
        );
        pages.push((format!("list-resources/{short}.md"), content));
    }
    pages
}

/// A list resource's `terraform query` example, where the registry's docs tooling looks for it.
fn list_example(type_name: &str) -> String {
    format!("examples/list-resources/{type_name}/list-resource.tfquery.hcl")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::DifyProvider;

    fn undescribed(block: &Block, at: &str, out: &mut Vec<String>) {
        if block.description.trim().is_empty() {
            out.push(format!("{at} (block)"));
        }
        for a in &block.attributes {
            if a.description.trim().is_empty() {
                out.push(format!("{at}.{}", a.name));
            }
        }
        for b in &block.blocks {
            undescribed(&b.block, &format!("{at}.{}", b.name), out);
        }
    }

    #[test]
    fn every_attribute_and_block_has_a_description() {
        let p = DifyProvider;
        let mut missing = Vec::new();
        undescribed(&p.schema().block, "provider", &mut missing);
        for r in p.resources() {
            undescribed(&r.schema().block, r.type_name(), &mut missing);
        }
        for d in p.data_sources() {
            undescribed(&d.schema().block, d.type_name(), &mut missing);
        }
        for l in p.list_resources() {
            undescribed(&l.schema().block, &format!("list {}", l.type_name()), &mut missing);
        }
        assert!(missing.is_empty(), "no description: {missing:?}");
    }

    /// The committed docs/ match the schema. `make docs` (DIFY_WRITE_DOCS=1) rewrites them.
    #[test]
    fn registry_docs_are_generated_from_the_current_schema() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let write = std::env::var("DIFY_WRITE_DOCS").is_ok();
        for (path, content) in pages(&DifyProvider) {
            let file = root.join(&path);
            if write {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, &content).unwrap();
            } else {
                let committed = std::fs::read_to_string(&file).unwrap_or_default();
                assert!(committed == content, "docs/{path} is out of date with the schema: run `make docs`");
            }
        }
    }
}
