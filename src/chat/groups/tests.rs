//! Owners of groups stored before owners existed.

use super::super::tests::test_limits;
use super::*;
use crate::store::client_ids::ClientIdLimits;
use crate::store::Store;

/// A record as written before owners existed: no `owner` key.
#[test]
fn a_record_without_owner_reads_as_none() {
    let creator = Uuid::from_u128(1);
    let json = format!(
        r#"{{"id":"{}","name":"old","creator":"{creator}","created_at":1,"ordinal":1,"members":["{creator}"]}}"#,
        Uuid::from_u128(9)
    );
    let record: GroupRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(record.owner, None);
}

/// Reopened, such records get the creator as owner while the creator is a member, else the
/// member in the group longest; a group nobody is in keeps none.
#[test]
fn records_without_an_owner_get_one_when_the_chat_opens() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Store::open_with(dir.path(), 1 << 20, ClientIdLimits::DEFAULT).unwrap();
        Chat::open(store, test_limits()).unwrap()
    };
    let [creator, first, second] = [1, 2, 3].map(Uuid::from_u128);
    let wall = crate::clock::wall_ms();
    let mut chat = open();
    let mut with_members = |name| {
        let id = chat.create_group(creator, name, &[], wall).unwrap();
        for member in [first, second] {
            chat.join(member, id, None, wall).unwrap();
        }
        id
    };
    let kept = with_members("kept");
    let left = with_members("left");
    chat.leave(creator, left, None, wall).unwrap();
    let empty = chat.create_group(creator, "empty", &[], wall).unwrap();
    chat.leave(creator, empty, None, wall).unwrap();
    for id in [kept, left, empty] {
        let mut old = chat.groups[&id].clone();
        old.owner = None;
        chat.store.put_group(&old);
    }
    chat.commit().unwrap();
    drop(chat);

    let chat = open();
    assert_eq!(chat.groups[&kept].owner, Some(creator));
    assert_eq!(chat.groups[&left].members, [first, second]);
    assert_eq!(chat.groups[&left].owner, Some(first));
    assert_eq!(chat.groups[&empty].owner, None);
}
