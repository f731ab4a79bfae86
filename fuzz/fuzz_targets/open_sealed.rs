//! The decryptor on arbitrary bytes: never a panic, nothing forged opens, seal/open round-trips. See `vinery_fuzz::keyed::check_open`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vinery_fuzz::keyed::check_open(data);
});
