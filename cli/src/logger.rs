//! Log lines from the library and the agent (through the `log` facade) on
//! stderr, with a timestamp: `[2026-12-05T08:40:00.123Z WARN  vinery] …`,
//! or one JSON object per line (`ts`, `level`, `target`, `msg`) for log
//! collectors. `RUST_LOG` is honoured as env_logger reads it; an explicit
//! level (`--log-level`) replaces its default level but keeps its
//! per-module directives.

use std::io::Write;

use log::LevelFilter;
use serde_json::json;

/// Logs at `level` (none given: `RUST_LOG`, else info) to stderr, as JSON
/// lines if `json`.
pub fn init(level: Option<LevelFilter>, json: bool) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(LevelFilter::Info);
    builder.parse_env(env_logger::Env::default());
    if let Some(level) = level {
        builder.filter_level(level);
    }
    builder.format_timestamp_millis();
    if json {
        builder.format(|out, record| {
            let line = json!({
                "ts": out.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(out, "{line}")
        });
    }
    // Only fails if a logger is already set, which then keeps logging.
    let _ = builder.try_init();
}
