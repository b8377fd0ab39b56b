//! The one integration-test crate: protocol tests and acceptance tests through real Terraform and the emulator.

mod alb;
mod ami;
mod bench_calls;
mod bad_input;
mod boot;
mod compat;
mod contract;
mod dns_record;
mod ec2_stack;
mod environments;
mod faults;
mod harness;
mod migration;
mod network;
mod persistent_volume;
mod protocol;
mod release;
mod sandbox;
mod provider_config;
mod proxy;
mod security;
mod seed;
mod state_compat;
mod upgrades;
mod vm;
