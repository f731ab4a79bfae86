//! A keyed endpoint: arbitrary bytes are refused unchanged; the bytes as messages sealed under its key are treated as a plain decoder would. See `vinery_fuzz::keyed::check_keyed`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vinery_fuzz::keyed::check_keyed(data);
});
