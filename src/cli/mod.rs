//! The command line's parts: argument blocks shared by the subcommands ([`args`]), their one
//! conversion to settings ([`settings`]), exit statuses ([`exit`]), and one module per
//! subcommand.

pub mod analyze;
pub mod args;
pub mod docs;
pub mod exit;
pub mod live;
pub mod report;
pub mod send;
pub mod settings;
pub mod sflow;
