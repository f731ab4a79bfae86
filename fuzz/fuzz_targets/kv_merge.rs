//! Scripted key/value traffic into an endpoint: replicas stay consistent, versions never go back, and re-applying a datagram settles. See `vinery_fuzz::script::check_kv_merge`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vinery_fuzz::script::check_kv_merge(data);
});
