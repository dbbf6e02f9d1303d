//! The engine under its old name (moved to [`crate::engine`] and [`crate::flow::record`]).

pub use crate::engine::{Config, Engine as Pipeline};
pub use crate::flow::record::{FlowRecord, FlowSink, SharedFlows};
