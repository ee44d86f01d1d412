//! The `members` values and `intervals` keys round-trip, and malformed ones are refused.

use super::*;

#[test]
fn member_states_round_trip() {
    for state in [
        MemberState::Member { seq: 7, order: 2 },
        MemberState::Removed {
            seq: u64::MAX,
            order: 0,
        },
        MemberState::Gone,
    ] {
        assert_eq!(MemberState::decode(&state.encode()), Some(state));
    }
    assert_eq!(MemberState::decode(&[3; 13]), None);
    assert_eq!(MemberState::decode(&[1; 12]), None);
}

#[test]
fn interval_keys_round_trip_and_sort_by_their_end() {
    let user = Uuid::from_u128(1);
    let early = ClosedInterval {
        group: Uuid::from_u128(u128::MAX),
        from: 9,
        to: 10,
    };
    let late = ClosedInterval {
        group: Uuid::from_u128(2),
        from: 1,
        to: 11,
    };
    assert_eq!(
        ClosedInterval::decode(&early.key(user)),
        Some((user, early))
    );
    assert!(early.key(user) < late.key(user));
    assert_eq!(ClosedInterval::decode(&early.key(user)[..47]), None);
}
