//! The workers under their old path (moved to [`crate::engine::workers`]).

pub use crate::engine::workers::*;
