use super::*;
use crate::store::client_ids::ClientIdLimits;
use crate::store::integrity::OnLoss;
use crate::store::{Ceiling, Store};

#[test]
fn a_whole_directory_checks_and_one_behind_its_mark_does_not() {
    let dir = tempfile::tempdir().unwrap();
    assert!(check(dir.path()).is_err(), "no store yet");
    let mut store =
        Store::open_data_dir(dir.path(), 1 << 20, ClientIdLimits::DEFAULT, OnLoss::Refuse).unwrap();
    store.commit(Ceiling { seq: 1024, time: 1 }).unwrap();
    drop(store);
    let report = check(dir.path()).unwrap();
    assert!(report.is_whole(), "{report}");
    assert_eq!((report.commits, report.seq_ceiling), (1, 1024));
    assert_eq!(
        report.mark,
        Some(Mark {
            commits: 1,
            seq: 1024
        })
    );

    mark::write(
        &mark_path(dir.path()),
        Mark {
            commits: 9,
            seq: 1024,
        },
    )
    .unwrap();
    let report = check(dir.path()).unwrap();
    assert!(!report.is_whole());
    assert!(
        report.to_string().contains("lost acknowledged data"),
        "{report}"
    );
}
