//! The case registry: every case's stable id, what it checks, its level, what it needs to run,
//! and how a case says it passed, failed or could not run.

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

/// Whose rule a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The walkthrough and the protocol notes' decisions: what every server must pass.
    Core,
    /// parley's own documented choices where the notes leave the answer open.
    Parley,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::Core, Level::Parley];

    pub fn word(self) -> &'static str {
        match self {
            Level::Core => "core",
            Level::Parley => "parley",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.word() == text)
    }
}

pub struct Case {
    /// Stable: `docs/PROTOCOL.md` and `docs/CONFORMANCE.md` cite it.
    pub id: &'static str,
    pub summary: &'static str,
    pub level: Level,
    pub needs: Needs,
    pub run: fn(&mut Ctx) -> Outcome,
}

impl Case {
    /// A case of the protocol every server must pass, needing nothing beyond the server's API.
    pub const fn core(
        id: &'static str,
        summary: &'static str,
        run: fn(&mut Ctx) -> Outcome,
    ) -> Case {
        Case {
            id,
            summary,
            level: Level::Core,
            needs: Needs::Nothing,
            run,
        }
    }

    /// A case of one of parley's own choices, needing nothing beyond the server's API.
    pub const fn parley(
        id: &'static str,
        summary: &'static str,
        run: fn(&mut Ctx) -> Outcome,
    ) -> Case {
        Case {
            level: Level::Parley,
            ..Case::core(id, summary, run)
        }
    }

    pub const fn needing(self, needs: Needs) -> Case {
        Case { needs, ..self }
    }
}

/// Which cases a run takes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `None`: both levels.
    pub level: Option<Level>,
    /// Ids containing one of these (all when empty).
    pub filters: Vec<String>,
    /// Ids containing one of these are left out.
    pub skips: Vec<String>,
}

/// Every case in running order: the walkthrough first, the cases that restart the server last.
pub fn all() -> Vec<&'static Case> {
    let groups: [&'static [Case]; 9] = [
        cases::walkthrough::CASES,
        cases::rest::CASES,
        cases::groups::CASES,
        cases::messaging::CASES,
        cases::delivery::CASES,
        cases::sync::CASES,
        cases::seq::CASES,
        cases::edits::CASES,
        cases::durability::CASES,
    ];
    groups.into_iter().flatten().collect()
}

/// The selected cases, core first, each level in running order.
pub fn select<'a>(cases: &[&'a Case], selection: &Selection) -> Vec<&'a Case> {
    let mut chosen: Vec<&Case> = cases
        .iter()
        .copied()
        .filter(|case| selection.level.is_none_or(|level| case.level == level))
        .filter(|case| {
            selection.filters.is_empty()
                || selection
                    .filters
                    .iter()
                    .any(|f| case.id.contains(f.as_str()))
        })
        .filter(|case| !selection.skips.iter().any(|s| case.id.contains(s.as_str())))
        .collect();
    chosen.sort_by_key(|case| case.level);
    chosen
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
mod tests;
