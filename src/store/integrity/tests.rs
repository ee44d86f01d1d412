use super::*;

fn open(dir: &Path, on_loss: OnLoss) -> StoreResult<Store> {
    Store::open_data_dir(dir, 1 << 20, ClientIdLimits::DEFAULT, on_loss)
}

fn ceiling(seq: u64) -> Ceiling {
    Ceiling { seq, time: seq }
}

#[test]
fn a_store_behind_its_mark_is_refused_unless_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), OnLoss::Refuse).unwrap();
    store.commit(ceiling(100)).unwrap();
    store.commit(ceiling(200)).unwrap();
    drop(store);
    let path = mark_path(dir.path());
    assert_eq!(
        mark::read(&path),
        Ok(Some(Mark {
            commits: 2,
            seq: 200
        }))
    );

    // As if the store had lost its last commits.
    mark::write(
        &path,
        Mark {
            commits: 5,
            seq: 5000,
        },
    )
    .unwrap();
    let refused = open(dir.path(), OnLoss::Refuse).err().expect("refused");
    let text = refused.to_string();
    assert!(
        text.contains("last commit is 2 but commit 5 was durable before")
            && text.contains("lost acknowledged data")
            && text.contains("--accept-data-loss"),
        "{text}"
    );

    let store = open(dir.path(), OnLoss::Accept).unwrap();
    assert_eq!(
        store.ceiling().unwrap().seq,
        5000,
        "seqs go on above the mark"
    );
    drop(store);
    assert!(
        open(dir.path(), OnLoss::Refuse).is_ok(),
        "the mark was rewritten"
    );
}

#[test]
fn a_missing_data_file_is_refused_and_an_old_directory_gets_a_mark() {
    let dir = tempfile::tempdir().unwrap();
    // A directory of before the mark: the store alone.
    let mut store = Store::open(&dir.path().join(STORE_DIR), 1 << 20).unwrap();
    store.commit(ceiling(100)).unwrap();
    drop(store);
    assert!(open(dir.path(), OnLoss::Refuse).is_ok());
    assert!(mark::read(&mark_path(dir.path())).unwrap().is_some());

    std::fs::remove_file(dir.path().join(STORE_DIR).join("db")).unwrap();
    let text = open(dir.path(), OnLoss::Refuse)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        text.contains("data file") && text.contains("missing"),
        "{text}"
    );
}
