//! The client side of the command line: talking to `slipway serve` and printing
//! what it answers (tables for people, `--output json` for scripts).

pub mod client;
pub mod task_cmd;
pub mod webhook_cmd;
