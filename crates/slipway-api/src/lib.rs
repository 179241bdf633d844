//! The API's words: what clients send and receive (runs, run requests, tasks, uploads,
//! errors), how a run request becomes the task text a worker runs, where a source is,
//! timer schedules, a run's typed secrets, tenants, and outbound webhooks. Pure values and functions: no I/O, no
//! HTTP, no database, no Docker. The server, the workers, the triggers and the client
//! all speak these types.

pub mod arm;
pub mod arm_blob;
pub mod arm_task;
pub mod model;
pub mod patch;
pub mod requests;
pub mod results;
pub mod schedule;
pub mod secrets;
pub mod source;
pub mod task;
pub mod tenant;
pub mod time;
pub mod webhook;

pub use model::{RunStatus, RunType};
