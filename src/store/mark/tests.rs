use super::*;

#[test]
fn a_written_mark_reads_back_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    assert_eq!(read(&path), Ok(None));
    let mark = Mark {
        commits: 12,
        seq: 3456,
    };
    write(&path, mark).unwrap();
    assert_eq!(read(&path), Ok(Some(mark)));
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(read(&path).is_err());
    std::fs::write(&path, &bytes[..5]).unwrap();
    assert!(read(&path).is_err());
}

#[test]
fn the_writer_leaves_the_newest_mark_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let writer = MarkWriter::start(path.clone());
    for commits in 1..=50 {
        writer.durable(Mark { commits, seq: 1024 });
    }
    drop(writer);
    assert_eq!(
        read(&path),
        Ok(Some(Mark {
            commits: 50,
            seq: 1024
        }))
    );
}
