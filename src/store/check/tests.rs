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

/// The membership tables are counted (current, ended, removed), and a record of them that does
/// not decode, or of a group with no record, is a problem.
#[test]
fn membership_tables_are_counted_and_checked() {
    use uuid::Uuid;
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        Store::open_data_dir(dir.path(), 1 << 20, ClientIdLimits::DEFAULT, OnLoss::Refuse).unwrap();
    let [a, b, c] = [1, 2, 3].map(Uuid::from_u128);
    let group = Uuid::from_u128(100);
    store.put_group(&crate::store::tests::test_group(group, &[a, b, c]));
    store.open_memberships(group, &[a, b, c], 1);
    store.close_membership(b, group, 2).unwrap();
    store.close_membership(c, group, 3).unwrap();
    store.mark_removed(group, c, 3);
    store.commit(Ceiling { seq: 3, time: 3 }).unwrap();
    drop(store);
    let report = check(dir.path()).unwrap();
    assert!(report.is_whole(), "{report}");
    assert_eq!(
        (report.memberships, report.intervals, report.removed),
        (1, 2, 1)
    );
    assert!(report
        .to_string()
        .contains("memberships ended 2, users removed from groups 1"));

    {
        let mut backend = SledBackend::open(&dir.path().join(STORE_DIR), 1 << 20).unwrap();
        backend.open_tables().unwrap();
        let mut key = Uuid::from_u128(999).as_bytes().to_vec();
        key.extend_from_slice(a.as_bytes());
        backend.put(Table::Members, &key, &[1, 2, 3]).unwrap();
        backend.put(Table::Intervals, &key, &[]).unwrap();
        backend.flush().unwrap();
    }
    let report = check(dir.path()).unwrap();
    let text = report.to_string();
    assert_eq!(report.problems.len(), 3, "{text}");
    assert!(text.contains("does not decode"), "{text}");
    assert!(text.contains("of a group with no record"), "{text}");
    assert!(text.contains("is not an interval"), "{text}");
}

/// A deleted account keeps its record and frees its names; a new account may take them. The
/// name indexes then hold one entry per live account, which is whole, not a problem.
#[test]
fn a_deleted_accounts_names_taken_by_another_check_whole() {
    use crate::store::UserRecord;
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        Store::open_data_dir(dir.path(), 1 << 20, ClientIdLimits::DEFAULT, OnLoss::Refuse).unwrap();
    let user = |id: u128| UserRecord {
        id: uuid::Uuid::from_u128(id),
        username: "ann".into(),
        email: "ann@example.com".into(),
        password_hash: "hash".into(),
        created_at: 1,
        token_generation: 0,
        suspended: false,
        deleted: false,
    };
    let mut first = user(1);
    store.insert_user(&first);
    first.deleted = true;
    store.update_user(&first);
    store.free_user_names(&first);
    store.commit(Ceiling { seq: 1024, time: 1 }).unwrap();
    store.insert_user(&user(2));
    store.commit(Ceiling { seq: 1024, time: 2 }).unwrap();
    drop(store);
    let report = check(dir.path()).unwrap();
    assert!(report.is_whole(), "{report}");
    assert_eq!(report.users, 2, "the deleted account's record stays");
}
