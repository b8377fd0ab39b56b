//! terraform-provider-dify: a Terraform provider for self-hosting Dify on AWS (tested on Terraform 1.6.6 to 1.15.5).
//!
//! Layers, each knowing only those below it: `protocol` (the wire) → `framework` (Terraform semantics) →
//! `provider`, `resources`, `data_sources` (Dify on AWS) → `aws` (clients, retries, waiters).

pub mod aws;
pub mod boot;
pub mod data_sources;
pub mod docs;
pub mod framework;
pub mod log;
pub mod protocol;
pub mod provider;
pub mod resources;
