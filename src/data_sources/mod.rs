//! Data sources: read-only lookups that feed resources.

pub mod ami;
pub mod network;
