//! The report: levels tallied apart, a level that did not run left out.

use super::*;

fn report(id: &'static str, level: Level, status: Status) -> CaseReport {
    CaseReport {
        id,
        summary: "",
        level,
        status,
        duration: Duration::ZERO,
        message: None,
        transcript: Vec::new(),
    }
}

#[test]
fn levels_are_tallied_apart() {
    let reports = [
        report("a", Level::Core, Status::Pass),
        report("b", Level::Core, Status::Fail),
        report("c", Level::Parley, Status::Skip),
        report("d", Level::Parley, Status::Fail),
    ];
    assert_eq!(
        tally_text(&reports, Duration::from_millis(1500)),
        "core:   1 passed, 1 failed, 0 skipped\n        failed: b\n\
         parley: 0 passed, 1 failed, 1 skipped\n        failed: d\n\
         all:    1 passed, 2 failed, 1 skipped in 1.5 s"
    );
    let json = json_report(&reports, "http://x", Duration::ZERO);
    assert_eq!(
        json["levels"],
        json!({
            "core": {"passed": 1, "failed": 1, "skipped": 0, "failed_cases": ["b"]},
            "parley": {"passed": 0, "failed": 1, "skipped": 1, "failed_cases": ["d"]},
        })
    );
    assert_eq!(
        (json["passed"].clone(), json["failed"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(json["cases"][3]["level"], "parley");
}

#[test]
fn a_level_that_did_not_run_is_not_reported() {
    let reports = [report("a", Level::Core, Status::Pass)];
    let json = json_report(&reports, "http://x", Duration::ZERO);
    assert_eq!(json["levels"].as_object().unwrap().len(), 1);
    assert!(!tally_text(&reports, Duration::ZERO).contains("parley"));
}
