//! Structure-aware: arbitrary messages, encoded, decoded, mutated and decoded again. See `vinery_fuzz::script::check_structured`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vinery_fuzz::script::check_structured(data);
});
