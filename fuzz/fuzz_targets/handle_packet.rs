//! Arbitrary bytes into an endpoint that already knows a few members and
//! has a probe in flight, then its timers. See
//! `vinery_fuzz::checks::check_endpoint`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The endpoint must accept exactly what the decoder accepts; both
    // outcomes are fine here.
    let _ = vinery_fuzz::checks::check_endpoint(data);
});
