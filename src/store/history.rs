//! A group's history as one member sees it (`GET /groups/{id}/messages`): the newest messages
//! before a seq, within the periods the member was in the group, read backwards from where
//! the page ends so that a page costs the same in a group of a hundred messages or a million.

use uuid::Uuid;

use super::backend::Direction;
use super::log::Span;
use super::{Store, StoreResult, StoredEvent};
use crate::protocol::event;

/// One page of history: messages oldest first, and whether older ones exist.
#[derive(Debug)]
pub struct HistoryPage {
    pub messages: Vec<StoredEvent>,
    pub more: bool,
}

impl Store {
    /// The periods (inclusive seq ranges) in which `user` was a member of `group`, newest
    /// first: the current membership, if any, then each closed one. Empty for a user who never
    /// was a member.
    pub fn member_periods(&self, user: Uuid, group: Uuid) -> StoreResult<Vec<(u64, u64)>> {
        let mut periods: Vec<(u64, u64)> = self
            .open_memberships_of(user)
            .iter()
            .filter(|(g, _)| *g == group)
            .map(|&(_, from)| (from, u64::MAX))
            .collect();
        for interval in self.closed_intervals(user, 1, Direction::Backward) {
            let interval = interval?;
            if interval.group == group {
                periods.push((interval.from, interval.to));
            }
        }
        Ok(periods)
    }

    /// The newest `limit` messages (event 20, as the log reader renders them: their current
    /// state) of `group` with seq < `before` in `periods` (as [`Store::member_periods`] gives
    /// them, newest first), listed oldest first, and whether older ones exist.
    pub fn history(
        &self,
        user: Uuid,
        group: Uuid,
        periods: &[(u64, u64)],
        before: u64,
        limit: usize,
    ) -> StoreResult<HistoryPage> {
        // Newest first while reading; one more than the page tells whether older ones exist.
        let mut found: Vec<StoredEvent> = Vec::with_capacity(limit.min(256) + 1);
        for &(from, to) in periods {
            if found.len() > limit {
                break;
            }
            let span = Span {
                from: from.max(1),
                to: to.min(before.saturating_sub(1)),
                after_time: None,
            };
            let memory = self.memory_chunks(group);
            self.log.read_backward(group, span, user, memory, |batch| {
                let messages = batch.into_iter().filter(|e| is_message(&e.bytes));
                let messages: Vec<StoredEvent> = messages.collect();
                found.extend(messages.into_iter().rev());
                found.len() <= limit
            })?;
        }
        let more = found.len() > limit;
        found.truncate(limit);
        found.reverse();
        Ok(HistoryPage {
            messages: found,
            more,
        })
    }
}

/// Whether a stored event's JSON is a message (event 20); the group stream also holds
/// membership, group and edit events.
fn is_message(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: u16,
    }
    serde_json::from_slice::<Kind>(bytes).is_ok_and(|k| k.kind == event::MESSAGE)
}
