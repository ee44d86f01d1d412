//! The report: one line per case as it finishes (pass, fail or skip), the failing request and what
//! came back, a closing tally per level and in all, and the same in JSON.

use std::time::Duration;

use serde_json::{json, Value};

use crate::registry::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

pub struct CaseReport {
    pub id: &'static str,
    pub summary: &'static str,
    pub level: Level,
    pub status: Status,
    pub duration: Duration,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// The exchanges leading to a failure (or of every case with `--verbose`).
    pub transcript: Vec<String>,
}

/// The line that opens a level's cases in the text report.
pub fn level_heading(level: Level) -> String {
    let what = match level {
        Level::Core => "the protocol, what every server must do",
        Level::Parley => "parley's own choices, where the protocol leaves the answer open",
    };
    format!("-- {}: {what}", level.word())
}

/// The human-readable lines for one finished case.
pub fn case_text(report: &CaseReport) -> String {
    let mut text = format!(
        "{:<4}  {}  ({} ms)",
        report.status.word().to_uppercase(),
        report.id,
        report.duration.as_millis()
    );
    if let Some(message) = &report.message {
        text.push_str(&format!("\n      {message}"));
    }
    if !report.transcript.is_empty() {
        text.push_str("\n      exchanges:");
        for line in &report.transcript {
            text.push_str(&format!("\n        {line}"));
        }
    }
    text
}

fn count<'a>(reports: impl IntoIterator<Item = &'a CaseReport>, status: Status) -> usize {
    reports.into_iter().filter(|r| r.status == status).count()
}

fn failed_ids<'a>(reports: impl IntoIterator<Item = &'a CaseReport>) -> Vec<&'static str> {
    reports
        .into_iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.id)
        .collect()
}

/// The levels that ran, with their reports, core first.
fn by_level(reports: &[CaseReport]) -> Vec<(Level, Vec<&CaseReport>)> {
    Level::ALL
        .into_iter()
        .map(|level| (level, reports.iter().filter(|r| r.level == level).collect()))
        .filter(|(_, of_level): &(Level, Vec<&CaseReport>)| !of_level.is_empty())
        .collect()
}

fn tally(passed: usize, failed: usize, skipped: usize) -> String {
    format!("{passed} passed, {failed} failed, {skipped} skipped")
}

pub fn tally_text(reports: &[CaseReport], elapsed: Duration) -> String {
    let mut text = String::new();
    for (level, of_level) in by_level(reports) {
        let failed = failed_ids(of_level.iter().copied());
        text.push_str(&format!(
            "{:<7} {}\n",
            format!("{}:", level.word()),
            tally(
                count(of_level.iter().copied(), Status::Pass),
                failed.len(),
                count(of_level.iter().copied(), Status::Skip)
            )
        ));
        if !failed.is_empty() {
            text.push_str(&format!("        failed: {}\n", failed.join(" ")));
        }
    }
    text.push_str(&format!(
        "all:    {} in {:.1} s",
        tally(
            count(reports, Status::Pass),
            count(reports, Status::Fail),
            count(reports, Status::Skip)
        ),
        elapsed.as_secs_f64()
    ));
    text
}

pub fn json_report(reports: &[CaseReport], target: &str, elapsed: Duration) -> Value {
    let cases: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut case = json!({
                "id": r.id,
                "level": r.level.word(),
                "summary": r.summary,
                "status": r.status.word(),
                "duration_ms": r.duration.as_millis() as u64,
            });
            if let Some(message) = &r.message {
                case["message"] = json!(message);
            }
            if !r.transcript.is_empty() {
                case["transcript"] = json!(r.transcript);
            }
            case
        })
        .collect();
    let mut levels = serde_json::Map::new();
    for (level, of_level) in by_level(reports) {
        levels.insert(
            level.word().to_string(),
            json!({
                "passed": count(of_level.iter().copied(), Status::Pass),
                "failed": count(of_level.iter().copied(), Status::Fail),
                "skipped": count(of_level.iter().copied(), Status::Skip),
                "failed_cases": failed_ids(of_level.iter().copied()),
            }),
        );
    }
    json!({
        "target": target,
        "passed": count(reports, Status::Pass),
        "failed": count(reports, Status::Fail),
        "skipped": count(reports, Status::Skip),
        "levels": levels,
        "duration_ms": elapsed.as_millis() as u64,
        "cases": cases,
    })
}

#[cfg(test)]
mod tests;
