//! Edits and deletes as the store serves them: finding a message where its id says it is
//! stored, as this tick sees it, and rewriting its entry (see [`super::log::rewrite`]).

use uuid::Uuid;

use super::log::rewrite::{Change, FoundMessage};
use super::{Store, StoreResult};

impl Store {
    /// The message `message_id` stored in `group` at `seq`, if it is there.
    pub fn find_message(
        &self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
    ) -> StoreResult<Option<FoundMessage>> {
        let unapplied = self
            .unapplied
            .iter()
            .rev()
            .filter_map(|tick| tick.chunks.get(&group));
        self.log.find_message(group, seq, message_id, unapplied)
    }

    /// Rewrites a message (found this tick) to its new state; sealed with the tick's other
    /// writes (the 25 or 26 appended with it), so a crash keeps both or neither.
    pub fn change_message(
        &mut self,
        group: Uuid,
        seq: u64,
        message_id: Uuid,
        change: Change,
    ) -> StoreResult<()> {
        let unapplied = &self.unapplied;
        let chunks = || {
            unapplied
                .iter()
                .rev()
                .filter_map(move |tick| tick.chunks.get(&group))
        };
        self.log
            .change_message(group, seq, message_id, chunks, change)
    }
}
