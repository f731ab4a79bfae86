//! `vinery keygen` prints a key that `--key` and keyring files accept,
//! fresh each time.

use std::process::Command;

use vinery::security::SecretKey;

fn keygen() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vinery"))
        .arg("keygen")
        .output()
        .expect("vinery runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn keygen_prints_fresh_keys_that_parse() {
    let (a, b) = (keygen(), keygen());
    assert_ne!(a, b, "two keys from the OS random source are different");
    for k in [a, b] {
        let key = SecretKey::from_base64(&k).expect("a valid key");
        assert_eq!(key.to_base64(), k);
    }
}
