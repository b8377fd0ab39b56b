//! Managed resources: one module per resource type.

pub mod persistent_volume;
