//! Log lines from the library (through the `log` facade) on stderr, one
//! per line, prefixed with level and module.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A closed stderr leaves nowhere to report to.
            let _ = writeln!(
                std::io::stderr().lock(),
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Sends log records at `level` and above to stderr.
pub fn init(level: LevelFilter) {
    // Only fails if a logger is already set, which then keeps logging.
    let _ = log::set_logger(&Stderr);
    log::set_max_level(level);
}
