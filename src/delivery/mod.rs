//! Delivery: the one engine that does the I/O ([`engine`]: the flush loop,
//! pacing, uploads and outcomes; its steps per kind of destination, each a
//! type over the engine: [`create`] for Centercode's create before the
//! engine uploads, [`one_request`] for destinations that take a report in
//! one request, with [`presigned`] uploads for ABC's images; and the
//! background [`sender`]), and the decisions it asks, free of I/O:
//! what an answer means ([`verdict`]), when to try again and how fast to
//! send ([`pace`]), the dates servers send ([`dates`]).

mod create;
mod dates;
pub(crate) mod engine;
mod one_request;
mod pace;
mod presigned;
#[cfg(test)]
mod proptests;
pub(crate) mod sender;
#[cfg(test)]
mod tests;
mod verdict;

pub(crate) use dates::*;
pub(crate) use pace::*;
pub(crate) use verdict::*;

// Centercode's create answer and routing, read by the engine and the tests
// until the engine asks the destination through its translator.
#[cfg(test)]
use crate::destinations::centercode::route_attachments;
pub(crate) use crate::destinations::centercode::{parse_created, Created, FileElement};
