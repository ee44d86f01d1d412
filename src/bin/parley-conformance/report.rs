//! The report: one line per case as it finishes (pass, fail or skip), the failing request and what
//! came back, a closing tally, and the same in JSON.

use std::time::Duration;

use serde_json::{json, Value};

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
    pub status: Status,
    pub duration: Duration,
    /// Why it failed or was skipped.
    pub message: Option<String>,
    /// The exchanges leading to a failure (or of every case with `--verbose`).
    pub transcript: Vec<String>,
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

pub fn count(reports: &[CaseReport], status: Status) -> usize {
    reports.iter().filter(|r| r.status == status).count()
}

pub fn tally_text(reports: &[CaseReport], elapsed: Duration) -> String {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.id)
        .collect();
    let mut text = format!(
        "{} passed, {} failed, {} skipped in {:.1} s",
        count(reports, Status::Pass),
        failed.len(),
        count(reports, Status::Skip),
        elapsed.as_secs_f64()
    );
    if !failed.is_empty() {
        text.push_str(&format!("\nfailed: {}", failed.join(" ")));
    }
    text
}

pub fn json_report(reports: &[CaseReport], target: &str, elapsed: Duration) -> Value {
    let cases: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut case = json!({
                "id": r.id,
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
    json!({
        "target": target,
        "passed": count(reports, Status::Pass),
        "failed": count(reports, Status::Fail),
        "skipped": count(reports, Status::Skip),
        "duration_ms": elapsed.as_millis() as u64,
        "cases": cases,
    })
}
