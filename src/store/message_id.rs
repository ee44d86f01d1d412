//! Message ids: UUIDs (version 8) that say where a message is stored, so that a receipt finds
//! it without an index. Clients treat them as opaque strings.
//!
//! Bytes 0..6 hold the message's seq (48 bits: at a million stored events a second, 8 years),
//! bytes 9..13 its group's ordinal; the other 30 bits (after the version and variant) are
//! random. Before format 5 bytes 0..6 held the message's timestamp, which was its seq.

use uuid::Uuid;

/// The largest seq a message id can carry.
pub const MAX_SEQ: u64 = (1 << 48) - 1;

/// A message id for the message stored at `seq` in the group of `group_ordinal`; `random`
/// fills the rest.
pub fn new(seq: u64, group_ordinal: u32, random: u64) -> Uuid {
    debug_assert!(seq <= MAX_SEQ);
    let mut bytes = random.to_le_bytes().repeat(2);
    bytes[..6].copy_from_slice(&seq.to_be_bytes()[2..]);
    bytes[9..13].copy_from_slice(&group_ordinal.to_be_bytes());
    Uuid::new_v8(bytes.try_into().expect("16 bytes"))
}

/// The seq and group ordinal an id carries (garbage for ids we did not make, which then match
/// no stored message).
pub fn location(id: Uuid) -> (u64, u32) {
    let bytes = id.as_bytes();
    let mut seq = [0u8; 8];
    seq[2..].copy_from_slice(&bytes[..6]);
    let ordinal = u32::from_be_bytes(bytes[9..13].try_into().expect("4 bytes"));
    (u64::from_be_bytes(seq), ordinal)
}

/// The seq of the sender's ack (21) of the message `id`: always the next one.
pub fn ack_seq(id: Uuid) -> u64 {
    location(id).0 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_carry_their_location() {
        for seq in [1, 1_795_570_339_419, MAX_SEQ] {
            let id = new(seq, 7, 42);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(location(id), (seq, 7));
            assert_eq!(ack_seq(id), seq + 1);
            assert_ne!(id, new(seq, 7, 43));
        }
    }
}
