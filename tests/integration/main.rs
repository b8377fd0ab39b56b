//! The one integration-test crate: protocol tests and acceptance tests through real Terraform and the emulator.

mod ami;
mod harness;
mod network;
mod protocol;
mod provider_config;
mod seed;
