#![no_main]
//! `parse_as(Format::Mp3, ..)` and `detect` on arbitrary bytes.

mod common;

use libfuzzer_sys::fuzz_target;
use musicfs::media::Format;

fuzz_target!(|data: &[u8]| common::check(Format::Mp3, data));
