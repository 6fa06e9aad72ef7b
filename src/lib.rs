//! musicfs: a content-addressed sync engine for music libraries.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod id;
