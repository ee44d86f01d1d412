//! The case registry: every case's stable id, what it checks, what it needs to run, and how a
//! case says it passed, failed or could not run.

use std::fmt::Debug;

use crate::cases::{self, Ctx};

/// Why a case stopped before its end.
#[derive(Debug)]
pub enum Stop {
    Fail(String),
    Skip(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Fail(message)
    }
}

/// What a case returns: `Ok` when every check held.
pub type Outcome = Result<(), Stop>;

/// What a case needs beyond a reachable server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// Waits on the server's own timers (seconds); runs with `--slow`.
    Time,
    /// Kills and restarts the server; runs with `--kill-cmd` and `--restart-cmd`.
    Restarts,
}

pub struct Case {
    /// Stable: `docs/PROTOCOL.md` and `docs/CONFORMANCE.md` cite it.
    pub id: &'static str,
    pub summary: &'static str,
    pub needs: Needs,
    pub run: fn(&mut Ctx) -> Outcome,
}

/// Every case in running order: the walkthrough first, the cases that restart the server last.
pub fn all() -> Vec<&'static Case> {
    let groups: [&'static [Case]; 7] = [
        cases::walkthrough::CASES,
        cases::rest::CASES,
        cases::groups::CASES,
        cases::messaging::CASES,
        cases::delivery::CASES,
        cases::sync::CASES,
        cases::durability::CASES,
    ];
    groups.into_iter().flatten().collect()
}

/// The cases whose id contains one of `filters` (all of them when there is none).
pub fn select<'a>(cases: &[&'a Case], filters: &[String]) -> Vec<&'a Case> {
    cases
        .iter()
        .copied()
        .filter(|case| filters.is_empty() || filters.iter().any(|f| case.id.contains(f.as_str())))
        .collect()
}

pub fn fail<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Fail(message.into()))
}

pub fn ensure(holds: bool, message: impl FnOnce() -> String) -> Outcome {
    if holds {
        Ok(())
    } else {
        Err(Stop::Fail(message()))
    }
}

pub fn ensure_eq<T: PartialEq + Debug>(what: &str, got: T, want: T) -> Outcome {
    ensure(got == want, || {
        format!("{what}: expected {want:?}, got {got:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for case in all() {
            assert!(seen.insert(case.id), "duplicate case id {}", case.id);
            assert!(
                case.id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'),
                "case id `{}` must be lower-case words joined by dots",
                case.id
            );
        }
        assert_eq!(all()[0].id, "walkthrough");
    }

    /// The reference and the kit cannot drift apart: every case is listed in the kit's docs, and
    /// every case the protocol cites exists.
    #[test]
    fn docs_and_cases_agree() {
        let ids: HashSet<&str> = all().iter().map(|c| c.id).collect();
        let listing = include_str!("../../../docs/CONFORMANCE.md");
        for id in &ids {
            assert!(
                listing.contains(&format!("`{id}`")),
                "docs/CONFORMANCE.md does not list case `{id}`"
            );
        }
        let protocol = include_str!("../../../docs/PROTOCOL.md");
        let mut cited = 0;
        for piece in protocol.split("[case: ").skip(1) {
            let id = piece.split(']').next().unwrap_or("");
            assert!(
                ids.contains(id),
                "docs/PROTOCOL.md cites unknown case `{id}`"
            );
            cited += 1;
        }
        assert!(cited > 0, "docs/PROTOCOL.md cites no case");
    }

    #[test]
    fn filters_match_substrings() {
        let cases = all();
        let sync = select(&cases, &["sync.".to_string()]);
        assert!(!sync.is_empty());
        assert!(sync.iter().all(|c| c.id.contains("sync.")));
        assert_eq!(select(&cases, &[]).len(), cases.len());
    }
}
