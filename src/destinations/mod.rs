//! The servers fieldreport delivers to, one folder each: how a stored
//! report becomes that server's requests, and what its answers mean, plus
//! (feature `sandbox`) a local stand-in for it.

pub(crate) mod centercode;
