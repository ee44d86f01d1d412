//! The case registry: ids, levels, selection, and agreement with the docs.

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

/// The reference and the kit cannot drift apart: every case is listed in the kit's docs with
/// its level, and every case the protocol cites exists.
#[test]
fn docs_and_cases_agree() {
    let ids: HashSet<&str> = all().iter().map(|c| c.id).collect();
    let listing = include_str!("../../../../docs/CONFORMANCE.md");
    for case in all() {
        let row = format!("| `{}` | {} |", case.id, case.level.word());
        assert!(
            listing.contains(&row),
            "docs/CONFORMANCE.md does not list case `{}` as `{row}`",
            case.id
        );
    }
    let protocol = include_str!("../../../../docs/PROTOCOL.md");
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
    let only = |filters: &[&str], skips: &[&str], level| Selection {
        level,
        filters: filters.iter().map(|s| s.to_string()).collect(),
        skips: skips.iter().map(|s| s.to_string()).collect(),
    };
    let sync = select(&cases, &only(&["sync."], &[], None));
    assert!(!sync.is_empty());
    assert!(sync.iter().all(|c| c.id.contains("sync.")));
    assert_eq!(select(&cases, &Selection::default()).len(), cases.len());
    let unsynced = select(&cases, &only(&[], &["sync."], None));
    assert_eq!(unsynced.len() + sync.len(), cases.len());
    assert!(unsynced.iter().all(|c| !c.id.contains("sync.")));
}

#[test]
fn levels_split_the_cases_core_first() {
    let cases = all();
    let everything = select(&cases, &Selection::default());
    let first_parley = everything
        .iter()
        .position(|c| c.level == Level::Parley)
        .expect("parley cases exist");
    assert!(everything[..first_parley]
        .iter()
        .all(|c| c.level == Level::Core));
    assert!(everything[first_parley..]
        .iter()
        .all(|c| c.level == Level::Parley));
    assert_eq!(everything[0].id, "walkthrough");
    for level in Level::ALL {
        let chosen = select(
            &cases,
            &Selection {
                level: Some(level),
                ..Selection::default()
            },
        );
        assert!(!chosen.is_empty() && chosen.iter().all(|c| c.level == level));
    }
    assert_eq!(Level::parse("core"), Some(Level::Core));
    assert_eq!(Level::parse("all"), None);
}
