//! Data sources: read-only lookups that feed resources.

pub mod ami;
pub mod instance_policy;
pub mod network;
