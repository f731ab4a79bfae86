//! Fault scripts: every script shipped under `examples/scenarios/` parses
//! and runs (on a small cluster), the steps do what they say, and a bad
//! script is refused with its line and word named.

use std::path::Path;

use vinery::sim::script::{self, Action, NodeSet, Script, ScriptReport};

fn run(s: &Script) -> ScriptReport {
    let report = script::run(s, None, &mut |_, _| {}).expect("the script checks");
    assert!(report.ok(), "{:?}", report.failure);
    report
}

fn error(text: &str) -> String {
    match text.parse::<Script>() {
        Ok(s) => match s.check() {
            Ok(()) => panic!("{text:?} was accepted"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_shipped_script_parses_and_runs_on_a_small_cluster() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/scenarios") {
        let path = entry.expect("readable").path();
        if path.extension().is_none_or(|e| e != "vsim") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut s: Script = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s.nodes = 12;
        let report = script::run(&s, None, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(report.ok(), "{}: {:?}", path.display(), report.failure);
        assert!(!report.figures.is_empty(), "{}: no figures", path.display());
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} scripts under {}", dir.display());
}

#[test]
fn a_crash_is_detected_and_a_partition_heals() {
    let s: Script = "nodes 20\nseed 3\nat 10s crash [5..6]\nat 40s partition [0%..50%] [50%..100%]\nat 70s heal\nat 120s end"
        .parse()
        .expect("parses");
    let r = run(&s);
    assert!(r.number("converge_s").is_some_and(|t| t < 10.0));
    let detect = r.number("detect_s").expect("the crash was detected");
    assert!(detect > 0.0 && detect < 30.0, "detected after {detect} s");
    assert_eq!(r.number("undetected"), Some(0.0));
    let heal = r.number("heal_s").expect("the partition healed");
    assert!(heal < 30.0, "healed after {heal} s");
}

#[test]
fn writes_reach_every_node_and_repeats_repeat() {
    // Several writers restart at once while writing: their new lives'
    // writes are followed to the end like any other.
    let s: Script = "nodes 16\nat 5s write 32 keys/s for 30s\nevery 10s restart 3\nat 60s end"
        .parse()
        .expect("parses");
    assert_eq!(s.steps.len(), 2);
    assert!(s.steps[1].repeat);
    assert_eq!(s.steps[1].action, Action::Restart(NodeSet::Count(3)));
    let r = run(&s);
    let writes = r.number("writes").expect("writes");
    assert!((900.0..=990.0).contains(&writes), "{writes} writes");
    assert_eq!(r.number("writes_unfinished"), Some(0.0));
    let p99 = r.number("write_lag_p99_s").expect("lags");
    assert!(p99 < 5.0, "p99 lag {p99} s");
}

#[test]
fn the_same_script_and_seed_give_the_same_run() {
    let text =
        "nodes 16\nseed 9\nat 5s jitter 25% 100ms\nat 10s loss 5%\nat 20s crash 10%\nat 40s end";
    let s: Script = text.parse().expect("parses");
    assert_eq!(run(&s).trace_hash, run(&s).trace_hash);
}

#[test]
fn a_report_line_selects_the_figures() {
    let s: Script = "nodes 8\nat 10s end\nreport converge_s bytes_per_node_s"
        .parse()
        .expect("parses");
    let r = run(&s);
    let names: Vec<&str> = r.figures.iter().map(|f| f.name).collect();
    assert_eq!(names, ["converge_s", "bytes_per_node_s"]);
}

#[test]
fn errors_name_the_line_and_the_word() {
    let cases = [
        (
            "nodes 10\n\n# comment\nat 5s crash 5x",
            "line 4: `at 5s crash 5x`: \"5x\": expected a share like 5%, a count or a range like [0..10]",
        ),
        ("at 10 heal", "line 1: `at 10 heal`: \"10\": expected a time like 10s"),
        ("nodes many", "line 1: `nodes many`: \"many\": expected a node count like 100"),
        ("at 1s explode", "line 1: `at 1s explode`: unknown step \"explode\""),
        ("at 1s loss 120%", "\"120%\": expected a percentage like 5% (0% to 100%)"),
        ("at 1s heal now", "unexpected \"now\" after a complete statement"),
        ("at 1s write 10 keys/s 5s", "\"5s\": expected `for`"),
        ("profile moon", "unknown profile \"moon\""),
        ("report converge_s speed", "unknown figure \"speed\""),
        ("at 50s end\nat 60s heal", "line 2: `at 60s heal`: happens after the end"),
        ("frobnicate", "line 1: `frobnicate`: unknown statement"),
        (
            "nodes 10\nat 5s partition [0..5] [5..20]",
            "line 2: `at 5s partition [0..5] [5..20]`: the range [5..20] is 5..20, not a non-empty range of the 10 nodes",
        ),
        ("every 0s heal", "`every` needs a positive period"),
    ];
    for (text, expected) in cases {
        let e = error(text);
        assert!(
            e.contains(expected),
            "{text:?}: got {e:?}, expected {expected:?}"
        );
    }
}
