//! The fuzz corpora, replayed as a test.
//!
//! `fuzz/corpus/decode_datagram/` and `fuzz/corpus/handle_packet/` hold the
//! seed datagrams (`seed-*`, generated from `fuzz/src/seeds.rs`) and
//! whatever the fuzzer found worth keeping. Every file, every truncation of
//! it and a few bit-flipped variants go through the same checks as the fuzz
//! targets (`fuzz/src/checks.rs`, included below).
//!
//! `VINERY_WRITE_CORPUS=1 cargo test --test corpus` rewrites the seed
//! files; without it, the test fails if they differ from what the current
//! wire format generates.

#[path = "../fuzz/src/checks.rs"]
mod checks;
#[path = "../fuzz/src/keyed.rs"]
mod keyed;
#[path = "../fuzz/src/script.rs"]
mod script;
#[path = "../fuzz/src/seeds.rs"]
mod seeds;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vinery::wire::{DatagramBuilder, Message, MessageKind, DEFAULT_DATAGRAM, HEADER_LEN};

/// The corpus directories, one per fuzz target.
const CORPUS_DIRS: [&str; 2] = ["fuzz/corpus/decode_datagram", "fuzz/corpus/handle_packet"];

/// The corpora of the targets that take scripts or message bodies rather
/// than datagrams, with what their seeds are made of: the seed datagrams
/// themselves, or (`true`) their bodies without the header.
const SCRIPT_DIRS: [(&str, bool); 4] = [
    ("fuzz/corpus/open_sealed", false),
    ("fuzz/corpus/handle_packet_keyed", true),
    ("fuzz/corpus/kv_merge", false),
    ("fuzz/corpus/structured", false),
];

/// The seeds of a script corpus.
fn script_seeds(body: bool) -> Vec<(String, Vec<u8>)> {
    seeds::seed_files()
        .into_iter()
        .map(|(n, b)| (n, if body { b[HEADER_LEN..].to_vec() } else { b }))
        .collect()
}

/// Bit-flipped variants tried per corpus file.
const FLIPS_PER_FILE: u64 = 8;

fn corpus_dir(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// Every file of every corpus directory, sorted, with its contents.
fn corpus_files() -> Vec<(PathBuf, Vec<u8>)> {
    write_seeds_if_asked();
    let mut files = Vec::new();
    for dir in CORPUS_DIRS {
        let entries = fs::read_dir(corpus_dir(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e} (run with VINERY_WRITE_CORPUS=1)"));
        for entry in entries {
            let path = entry.expect("readable directory").path();
            if path.is_file() {
                let bytes = fs::read(&path).expect("readable corpus file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

fn is_seed(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("seed-"))
}

/// With `VINERY_WRITE_CORPUS=1`, (re)writes the seed files of every corpus
/// directory and removes seeds no longer generated; once per test run,
/// before any test reads the corpora.
fn write_seeds_if_asked() {
    static WRITTEN: OnceLock<()> = OnceLock::new();
    WRITTEN.get_or_init(|| {
        if std::env::var("VINERY_WRITE_CORPUS").ok().as_deref() != Some("1") {
            return;
        }
        let datagram_dirs = CORPUS_DIRS.iter().map(|d| (*d, seeds::seed_files()));
        let script_dirs = SCRIPT_DIRS
            .iter()
            .map(|(d, body)| (*d, script_seeds(*body)));
        for (dir, seeds) in datagram_dirs.chain(script_dirs) {
            let dir = corpus_dir(dir);
            fs::create_dir_all(&dir).expect("create corpus directory");
            for entry in fs::read_dir(&dir).expect("readable directory") {
                let path = entry.expect("readable directory").path();
                if is_seed(&path) && !seeds.iter().any(|(n, _)| path.ends_with(n)) {
                    fs::remove_file(&path).expect("remove stale seed");
                }
            }
            for (name, bytes) in &seeds {
                fs::write(dir.join(name), bytes).expect("write seed");
            }
        }
    });
}

#[test]
fn seed_files_match_the_wire_format() {
    write_seeds_if_asked();
    let seeds = seeds::seed_files();
    for dir in CORPUS_DIRS {
        let dir = corpus_dir(dir);
        for (name, bytes) in &seeds {
            let path = dir.join(name);
            let on_disk = fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with VINERY_WRITE_CORPUS=1)", path.display())
            });
            assert!(
                on_disk == *bytes,
                "{} differs from what the wire format generates; \
                 if the format changed on purpose, run with VINERY_WRITE_CORPUS=1",
                path.display()
            );
        }
        for entry in fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("readable directory").path();
            assert!(
                !is_seed(&path) || seeds.iter().any(|(n, _)| path.ends_with(n)),
                "{} is a stale seed (run with VINERY_WRITE_CORPUS=1)",
                path.display()
            );
        }
    }
}

#[test]
fn script_corpora_pass_their_checks() {
    write_seeds_if_asked();
    for (dir, body) in SCRIPT_DIRS {
        let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e} (run with VINERY_WRITE_CORPUS=1)"))
            .map(|e| e.expect("readable directory").path())
            .collect();
        files.sort();
        assert!(files.len() >= script_seeds(body).len(), "{dir} lacks seeds");
        for path in files {
            let bytes = fs::read(&path).expect("readable corpus file");
            match dir.rsplit('/').next() {
                Some("open_sealed") => keyed::check_open(&bytes),
                Some("handle_packet_keyed") => {
                    let r = keyed::check_keyed(&bytes);
                    if is_seed(&path) {
                        assert_eq!(r, Ok(()), "{} must be accepted", path.display());
                    }
                }
                Some("kv_merge") => script::check_kv_merge(&bytes),
                Some("structured") => script::check_structured(&bytes),
                other => panic!("no check for {other:?}"),
            }
        }
    }
}

#[test]
fn seeds_cover_every_kind_and_the_budget() {
    let seeds = seeds::seed_files();
    for kind in MessageKind::ALL {
        let name = format!("seed-{}", kind.name());
        let (_, bytes) = seeds
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no seed for {kind:?}"));
        let decoded = checks::check_decode(bytes);
        assert_eq!(decoded.result, Ok(()));
        let kinds: Vec<MessageKind> = decoded.messages.iter().map(Message::kind).collect();
        assert_eq!(kinds, [kind]);
    }
    let (_, compound) = seeds.iter().find(|(n, _)| n == "seed-compound").unwrap();
    let decoded = checks::check_decode(compound);
    let kinds: Vec<MessageKind> = decoded.messages.iter().map(Message::kind).collect();
    assert_eq!(
        kinds,
        MessageKind::ALL,
        "the compound seed holds every kind in order"
    );

    let (_, full) = seeds.iter().find(|(n, _)| n == "seed-full-budget").unwrap();
    assert!(full.len() <= DEFAULT_DATAGRAM);
    let decoded = checks::check_decode(full);
    assert_eq!(decoded.result, Ok(()));
    assert_eq!(decoded.messages[0].kind(), MessageKind::Ping);
    assert!(decoded.messages[1..]
        .iter()
        .all(|m| m.kind() == MessageKind::Alive));
    // Full: not even the smallest update (the first name) would fit.
    let names = seeds::member_names(1);
    let mut b = DatagramBuilder::new(seeds::corpus_header(), DEFAULT_DATAGRAM);
    for m in &decoded.messages {
        b.push(m).unwrap();
    }
    assert_eq!(b.len(), full.len());
    assert!(b.push(&seeds::alive_update(&names[0], 0)).is_err());
}

#[test]
fn every_corpus_file_passes_the_fuzz_checks() {
    let files = corpus_files();
    assert!(files.len() >= 2 * seeds::seed_files().len());
    for (path, bytes) in &files {
        let decoded = checks::check_decode(bytes);
        let accepted = checks::check_endpoint(bytes);
        if is_seed(path) {
            assert_eq!(decoded.result, Ok(()), "{} must decode", path.display());
            assert_eq!(accepted, Ok(()), "{} must be accepted", path.display());
        }
    }
}

#[test]
fn every_truncation_is_rejected_unless_it_ends_on_a_message() {
    for (path, bytes) in corpus_files() {
        let whole = checks::check_decode(&bytes);
        let prefixes: Vec<&[u8]> = (0..bytes.len()).map(|cut| &bytes[..cut]).collect();
        // check_endpoint_each asserts that a rejected prefix leaves the
        // endpoint unchanged and silent.
        let accepted = checks::check_endpoint_each(&prefixes);
        for (cut, prefix) in prefixes.iter().enumerate() {
            let decoded = checks::check_decode(prefix);
            // A datagram cut exactly after one of its messages is a valid,
            // shorter datagram; every other cut must be an error.
            let on_boundary = whole.ends.contains(&cut);
            assert_eq!(
                decoded.result.is_ok(),
                on_boundary,
                "{} cut at {cut}: {:?}",
                path.display(),
                decoded.result
            );
            if on_boundary {
                let n = decoded.messages.len();
                assert_eq!(decoded.messages[..], whole.messages[..n]);
            } else {
                assert!(
                    accepted[cut].is_err(),
                    "{} cut at {cut} accepted",
                    path.display()
                );
                if cut < HEADER_LEN {
                    assert_eq!(decoded.result, Err(vinery::wire::WireError::TooShort));
                }
            }
        }
    }
}

/// SplitMix64: a fixed, dependency-free source of "random" bit positions.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn bit_flipped_corpus_files_never_panic() {
    let mut accepted_flips = 0;
    let mut total = 0;
    for (i, (_, bytes)) in corpus_files().into_iter().enumerate() {
        if bytes.is_empty() {
            continue;
        }
        let bits = bytes.len() as u64 * 8;
        for k in 0..FLIPS_PER_FILE {
            let mut flipped = bytes.clone();
            // The first flip hits the body, the rest anywhere.
            let bit = if k == 0 && bytes.len() > HEADER_LEN {
                HEADER_LEN as u64 * 8 + splitmix(i as u64) % (bits - HEADER_LEN as u64 * 8)
            } else {
                splitmix((i as u64) << 8 | k) % bits
            };
            flipped[(bit / 8) as usize] ^= 1 << (bit % 8);
            let decoded = checks::check_decode(&flipped);
            let endpoint = checks::check_endpoint(&flipped);
            // The decoder check takes the cluster tag (bytes 4..8) from the
            // datagram; the endpoint knows its own.
            if bit < 4 * 8 {
                assert!(decoded.result.is_err(), "a flipped header bit was accepted");
            }
            if bit < HEADER_LEN as u64 * 8 {
                assert!(endpoint.is_err(), "a flipped header bit was accepted");
            }
            accepted_flips += usize::from(endpoint.is_ok());
            total += 1;
        }
    }
    // A bit flip in a name or an address is still a valid datagram; some
    // must be accepted or the flips never reach the message handlers.
    assert!(accepted_flips > 0 && accepted_flips < total);
}
