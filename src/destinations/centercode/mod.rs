//! Centercode's External Feedback API (`reference/centercode-api.txt`).

#[cfg(feature = "sandbox")]
pub(crate) mod sandbox;
