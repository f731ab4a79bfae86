//! A sequence of forged datagrams from several sources against a small
//! cluster; once forging stops, it must recover. See
//! `vinery_fuzz::forge::check_forge_sequence`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _answers = vinery_fuzz::forge::check_forge_sequence(data);
});
