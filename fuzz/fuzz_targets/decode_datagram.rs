//! Arbitrary bytes through the datagram decoder: header, every message,
//! round trip of each. See `vinery_fuzz::checks::check_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vinery_fuzz::checks::check_decode(data);
});
