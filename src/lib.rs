//! bittap: a passive network monitor for BitTorrent traffic.
//!
//! The pipeline is capture → decode → flow → classify → aggregate → sink; `analyze` is the
//! offline front door over capture files. Tests and benches drive [`engine::Engine`]
//! directly.

pub mod aggregate;
pub mod analyze;
pub mod capture;
pub mod classify;
pub mod decode;
pub mod engine;
pub mod fanout;
pub mod flow;
pub mod live;
pub mod metrics;
pub mod report;
pub mod sflow;
pub mod sink;
pub mod time;
