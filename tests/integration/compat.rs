//! The Terraform version matrix: the dev env folder on Terraform 1.6.6, 1.9.8 and 1.12.2 (the `.venv-tf<minor>`
//! venvs `make tf-venvs` installs), as on the project's 1.15.5: init from the mirror, apply, an empty plan, import
//! (`terraform import` by id, then an `import` block) and destroy.
//!
//! What needs a newer Terraform is left out where it does not exist: `import` blocks by `identity` (1.12) are used
//! on 1.12.2 only, and by `id` below it; `terraform query` (1.14) runs only on 1.15.5 (alb.rs). The provider has no
//! write-only attributes (1.11). docs/index.md says the same.

use crate::environments::{in_env, prepare_in};
use crate::harness::{older_terraform_venv, Moto, TfOutput, Workspace};

const ENV: &str = "dev";

/// `terraform -chdir=environments/dev ARGS... VARS... POSITIONAL...`: flags before positional arguments, as
/// `import` and `state rm` need them.
fn in_env_with(ws: &Workspace, args: &[&str], vars: &[String], positional: &[&str]) -> TfOutput {
    let mut all = vec![format!("-chdir=environments/{ENV}")];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("-no-color".to_string());
    all.extend(vars.iter().cloned());
    all.extend(positional.iter().map(|s| s.to_string()));
    ws.run(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn state_id(ws: &Workspace, address: &str) -> String {
    let out = in_env_with(ws, &["state", "show"], &[], &[address]);
    assert_eq!(out.code, 0, "state show {address}:\n{}", out.all());
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("id").filter(|r| r.trim_start().starts_with('=')).map(|r| r.trim().trim_start_matches('=').trim().trim_matches('"').to_string()))
        .unwrap_or_else(|| panic!("no id for {address}:\n{}", out.stdout))
}

fn assert_empty_plan(ws: &Workspace, vars: &[String], after: &str) {
    let out = in_env(ws, ENV, &["plan", "-detailed-exitcode", "-input=false"], vars);
    assert_eq!(out.code, 0, "the plan after {after} is empty:\n{}", out.all());
}

async fn smoke(minor: &str, full: &str) {
    let started = std::time::Instant::now();
    let venv = older_terraform_venv(minor);
    let moto = Moto::start();
    let ws = Workspace::new(&moto, "").terraform_in(&venv);
    let version: TfOutput = ws.command(&["version"]).output().expect("terraform version").into();
    assert!(version.stdout.contains(&format!("Terraform v{full}")), "expected Terraform {full}:\n{}", version.all());

    // Init (from the filesystem mirror) happens in prepare.
    let (ws, vars) = prepare_in(ENV, "10.13", &moto, ws).await;
    let out = in_env(&ws, ENV, &["apply", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "Terraform {full} apply:\n{}", out.all());
    assert!(out.stdout.contains("Apply complete! Resources: 4 added"), "{}", out.stdout);
    assert_empty_plan(&ws, &vars, "apply");

    // `terraform import` by id: the load balancer, forgotten and adopted again.
    let alb = "module.dify.dify_alb.this";
    let alb_id = state_id(&ws, alb);
    let out = in_env_with(&ws, &["state", "rm"], &[], &[alb]);
    assert_eq!(out.code, 0, "state rm:\n{}", out.all());
    let out = in_env_with(&ws, &["import", "-input=false"], &vars, &[alb, &alb_id]);
    assert_eq!(out.code, 0, "Terraform {full} import {alb_id}:\n{}", out.all());
    assert!(out.stdout.contains("Import successful!"), "{}", out.stdout);
    assert_empty_plan(&ws, &vars, "terraform import");

    // An `import` block: by identity from 1.12, by id below it.
    let volume = "module.dify.dify_persistent_volume.data[0]";
    let volume_id = state_id(&ws, volume);
    let out = in_env_with(&ws, &["state", "rm"], &[], &[volume]);
    assert_eq!(out.code, 0, "state rm:\n{}", out.all());
    let by = if minor == "1.12" { format!("identity = {{ id = \"{volume_id}\" }}") } else { format!("id = \"{volume_id}\"") };
    let block = ws.dir.path().join(format!("environments/{ENV}/import.tf"));
    std::fs::write(&block, format!("import {{\n  to = {volume}\n  {by}\n}}\n")).unwrap();
    let out = in_env(&ws, ENV, &["apply", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "Terraform {full} import block ({by}):\n{}", out.all());
    assert!(out.stdout.contains("1 imported, 0 added, 0 changed, 0 destroyed"), "{}", out.stdout);
    std::fs::remove_file(&block).unwrap();
    assert_empty_plan(&ws, &vars, "the import block");

    let out = in_env(&ws, ENV, &["destroy", "-auto-approve", "-input=false"], &vars);
    assert_eq!(out.code, 0, "Terraform {full} destroy:\n{}", out.all());
    assert!(out.stdout.contains("Destroy complete! Resources: 4 destroyed"), "{}", out.stdout);
    eprintln!("compat: Terraform {full} smoke in {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn terraform_1_6_runs_the_dev_environment() {
    smoke("1.6", "1.6.6").await;
}

#[tokio::test]
async fn terraform_1_9_runs_the_dev_environment() {
    smoke("1.9", "1.9.8").await;
}

#[tokio::test]
async fn terraform_1_12_runs_the_dev_environment() {
    smoke("1.12", "1.12.2").await;
}
