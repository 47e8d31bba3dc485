//! The box's log: text on stderr, coloured only when stderr is a terminal
//! (journald and files get no escape codes), or one JSON object a line
//! (`--log-format json`). Under systemd (`JOURNAL_STREAM` names stderr)
//! each line starts with its syslog priority (`<3>` for errors, …), which
//! journald turns into the entry's level. `RUST_LOG` picks what is logged.

use clap::ValueEnum;
use std::io::IsTerminal;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// Starts logging to stderr in `format`.
pub fn init(format: LogFormat) {
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    let journal = stderr_is_journal();
    let ansi = std::io::stderr().is_terminal() && !journal;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => {
            let events = Prefixed { inner: format::format().with_ansi(ansi), journal };
            let layer = Layer::default().with_ansi(ansi).event_format(events);
            registry.with(layer.with_writer(std::io::stderr)).init();
        }
        LogFormat::Json => {
            let events = Prefixed { inner: format::format().json(), journal };
            let layer = Layer::default().json().event_format(events);
            registry.with(layer.with_writer(std::io::stderr)).init();
        }
    }
}

/// Whether stderr is the stream systemd connected to the journal: the
/// `JOURNAL_STREAM` variable holds its "device:inode".
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    stream == format!("{}:{}", meta.dev(), meta.ino())
}

/// A line's syslog priority, as sd-daemon(3) prefixes: "<3>" … "<7>".
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Another event format, with the priority prefix in front under journald.
struct Prefixed<F> {
    inner: F,
    journal: bool,
}

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if self.journal {
            write!(writer, "<{}>", priority(event.metadata().level()))?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        let p: Vec<u8> = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE]
            .iter()
            .map(priority)
            .collect();
        assert_eq!(p, [3, 4, 6, 7, 7]);
    }
}
