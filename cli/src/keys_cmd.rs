//! `vinery keygen`: a fresh pre-shared key from the operating system's
//! random source, in the base64 form `--key`, keyring files and
//! `SecretKey::from_base64` read.

use std::process::ExitCode;

use rand::TryRngCore;
use vinery::security::SecretKey;

/// Prints a new key.
pub fn keygen() -> ExitCode {
    let mut bytes = [0u8; SecretKey::LEN];
    if let Err(e) = rand::rngs::OsRng.try_fill_bytes(&mut bytes) {
        eprintln!("vinery keygen: the OS random source failed: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", SecretKey::from_bytes(bytes).to_base64());
    ExitCode::SUCCESS
}
