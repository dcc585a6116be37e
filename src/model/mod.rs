//! The report model: what an app hands in and gets back, and the context
//! a report carries. It knows no server and no storage.

pub(crate) mod context;
pub(crate) mod json;
pub mod report;
