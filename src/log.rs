//! The process's `log` logger: one stderr line per record, `parley: LEVEL message` for parley's
//! own and `parley: LEVEL target: message` for a dependency's (sled, mio, tungstenite), filtered
//! by `PARLEY_LOG`. Nothing secret is ever passed in: no tokens, passwords or message contents.

use std::io::Write;

use ::log::{LevelFilter, Log, Metadata, Record};

/// The crate whose records are parley's own (the library and the `parley` binary).
const OWN: &str = "parley";
/// A dependency's level unless named: its warnings and errors show, its chatter does not.
const DEPENDENCY_DEFAULT: LevelFilter = LevelFilter::Warn;

/// `PARLEY_LOG` parsed: a level for parley's own records, optionally `target=level` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    own: LevelFilter,
    dependencies: LevelFilter,
    /// Longest target first, so `sled::pagecache=...` wins over `sled=...`.
    targets: Vec<(String, LevelFilter)>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            own: LevelFilter::Info,
            dependencies: DEPENDENCY_DEFAULT,
            targets: Vec::new(),
        }
    }
}

impl Filter {
    /// `LEVEL` and `target=level` items, comma-separated, e.g. `info,sled=debug`.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            match item.split_once('=') {
                None => {
                    filter.own = level(item)?;
                    // A quieter parley quiets the dependencies too; a louder one leaves them be.
                    filter.dependencies = filter.own.min(DEPENDENCY_DEFAULT);
                }
                Some((target, text)) => {
                    let target = target.trim();
                    if target.is_empty() {
                        return Err(format!("{item:?} names no target"));
                    }
                    let level = level(text)?;
                    filter.targets.retain(|(named, _)| named != target);
                    filter.targets.push((target.to_string(), level));
                }
            }
        }
        filter
            .targets
            .sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        Ok(filter)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        match self.targets.iter().find(|(named, _)| within(target, named)) {
            Some((_, level)) => *level,
            None if within(target, OWN) => self.own,
            None => self.dependencies,
        }
    }

    /// The loudest level anything may log at, so `log` skips the rest before formatting.
    fn loudest(&self) -> LevelFilter {
        let named = self.targets.iter().map(|(_, level)| *level);
        named.fold(self.own.max(self.dependencies), Ord::max)
    }
}

fn level(text: &str) -> Result<LevelFilter, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(format!(
            "{text:?} is not a level (error, warn, info, debug, trace)"
        )),
    }
}

/// `target` is the module `name` or one inside it (`sled` covers `sled::tree`, not `sledge`).
fn within(target: &str, name: &str) -> bool {
    target
        .strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

struct Stderr {
    filter: Filter,
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // One write per line, so lines from sled's and the hashers' threads never interleave;
            // a closed stderr must not take the server down.
            let _ = std::io::stderr().write_all(line(record).as_bytes());
        }
    }

    fn flush(&self) {}
}

fn line(record: &Record<'_>) -> String {
    let level = record.level();
    if within(record.target(), OWN) {
        format!("parley: {level} {}\n", record.args())
    } else {
        format!("parley: {level} {}: {}\n", record.target(), record.args())
    }
}

/// Makes this the logger of the process; the first call wins (only `main` makes one).
pub fn install(filter: Filter) {
    ::log::set_max_level(filter.loudest());
    let _ = ::log::set_boxed_logger(Box::new(Stderr { filter }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::log::Level;

    /// Whether a record at `level` from `target` would be written.
    fn passes(filter: &Filter, target: &str, level: Level) -> bool {
        let logger = Stderr {
            filter: filter.clone(),
        };
        logger.enabled(&Metadata::builder().target(target).level(level).build())
    }

    fn parsed(text: &str) -> Filter {
        Filter::parse(text).unwrap()
    }

    #[test]
    fn by_default_parley_says_info_and_dependencies_only_warn() {
        let filter = Filter::default();
        assert_eq!(parsed(""), filter);
        assert!(passes(&filter, "parley::server", Level::Info));
        assert!(!passes(&filter, "parley::server", Level::Debug));
        assert!(passes(&filter, "parley", Level::Info));
        assert!(passes(&filter, "sled::pagecache", Level::Warn));
        assert!(!passes(&filter, "sled::pagecache", Level::Info));
        assert!(!passes(&filter, "mio::poll", Level::Debug));
        assert_eq!(filter.loudest(), LevelFilter::Info);
    }

    #[test]
    fn a_bare_level_is_parleys_and_only_lowers_the_dependencies() {
        let loud = parsed("debug");
        assert!(passes(&loud, "parley::api", Level::Debug));
        assert!(!passes(&loud, "parley::api", Level::Trace));
        assert!(!passes(&loud, "tungstenite::protocol", Level::Info));
        let quiet = parsed(" ERROR ");
        assert!(!passes(&quiet, "parley::store", Level::Warn));
        assert!(!passes(&quiet, "sled::tree", Level::Warn));
        assert!(passes(&quiet, "sled::tree", Level::Error));
        assert_eq!(parsed("warning").own, LevelFilter::Warn);
        assert_eq!(parsed("trace").loudest(), LevelFilter::Trace);
    }

    #[test]
    fn a_named_target_covers_its_modules_and_the_longest_name_wins() {
        let filter = parsed("info,sled=debug,sled::pagecache=error,mio=error");
        assert!(passes(&filter, "sled", Level::Debug));
        assert!(passes(&filter, "sled::tree", Level::Debug));
        assert!(!passes(&filter, "sled::pagecache::iobuf", Level::Warn));
        assert!(passes(&filter, "sled::pagecache::iobuf", Level::Error));
        assert!(!passes(&filter, "mio::poll", Level::Warn));
        assert!(
            !passes(&filter, "sledge", Level::Info),
            "a name is not a prefix"
        );
        assert!(passes(&filter, "sledge", Level::Warn));
        assert_eq!(filter.loudest(), LevelFilter::Debug);
        let own = parsed("parley::store=trace");
        assert!(passes(&own, "parley::store::flusher", Level::Trace));
        assert!(!passes(&own, "parley::server", Level::Debug));
    }

    #[test]
    fn the_last_word_on_a_target_wins() {
        let filter = parsed("sled=debug, sled = error ,warn");
        assert!(!passes(&filter, "sled::tree", Level::Warn));
        assert_eq!(filter.own, LevelFilter::Warn);
        assert_eq!(filter.targets.len(), 1);
    }

    #[test]
    fn what_is_not_a_level_or_a_target_is_refused() {
        assert!(Filter::parse("loud")
            .unwrap_err()
            .contains("\"loud\" is not a level"));
        assert!(Filter::parse("info,sled=").is_err());
        assert!(Filter::parse("info,sled=verbose").is_err());
        assert!(Filter::parse("=debug")
            .unwrap_err()
            .contains("names no target"));
    }

    fn formatted(target: &str, level: Level, message: std::fmt::Arguments<'_>) -> String {
        line(
            &Record::builder()
                .target(target)
                .level(level)
                .args(message)
                .build(),
        )
    }

    #[test]
    fn parleys_lines_keep_their_format_and_dependencies_say_where_they_come_from() {
        assert_eq!(
            formatted(
                "parley::server",
                Level::Info,
                format_args!("stopped: {} left", 3)
            ),
            "parley: INFO stopped: 3 left\n"
        );
        assert_eq!(
            formatted("parley", Level::Error, format_args!("store error: io")),
            "parley: ERROR store error: io\n"
        );
        assert_eq!(
            formatted("sled::pagecache", Level::Warn, format_args!("slow fsync")),
            "parley: WARN sled::pagecache: slow fsync\n"
        );
        assert_eq!(
            formatted("mio::poll", Level::Trace, format_args!("tick")),
            "parley: TRACE mio::poll: tick\n"
        );
    }
}
