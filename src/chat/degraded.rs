//! Reads served while the store cannot write (a full disk): answers that store nothing and
//! return nothing above the read limit leave at once instead of waiting for a commit that cannot
//! become durable until the disk has room (docs/ARCHITECTURE.md, "A full disk").

use super::{Chat, ConnId, Frame, Release};
use crate::clock::Stamp;
use crate::protocol::Cursor;
use crate::store::SyncPage;

impl Chat {
    /// The clock's last stamp: no event stored so far is newer (the loop notes it with each
    /// commit, see `Durability::written`).
    pub fn last_stamp(&self) -> Stamp {
        Stamp {
            seq: self.clock.seq(),
            timestamp: self.clock.time(),
        }
    }

    /// While the store cannot write, the newest stamp whose events are all durable (the loop's
    /// `Durability::read_limit`); `None` while it writes.
    pub fn set_read_limit(&mut self, limit: Option<Stamp>) {
        self.read_limit = limit;
    }

    /// When an answer that stored nothing and read only what is durable may leave: at once
    /// while the store cannot write, else, like every answer, once the last commit written is
    /// durable (it may have read what that commit holds).
    pub(super) fn read_release(&self) -> Release {
        if self.read_limit.is_some() {
            Release::Now
        } else {
            Release::Durable
        }
    }

    /// Queues an HTTP answer to a request that stored nothing and read only what is durable
    /// (`GET` routes, a login): see [`Chat::read_release`]. The loop lets only such requests run
    /// while the store cannot write; the others' answers use [`Chat::respond`].
    pub fn respond_read(&mut self, to: ConnId, bytes: Vec<u8>) {
        let release = self.read_release();
        self.outbox.push(to, Frame::Http(bytes), release);
    }
}

/// Drops from a sync page the events above `limit` (not durable yet: they would acknowledge
/// what a crash could lose, and the client's next cursor would pass them), and after a
/// timestamp cursor the kept events of the first dropped one's millisecond too (a page by
/// timestamp never ends inside a millisecond). Returns the first dropped event's stamp; the
/// page then says `more: false`, since everything after it is above the limit as well.
pub(super) fn hold_back(page: &mut SyncPage, limit: Stamp, cursor: Cursor) -> Option<Stamp> {
    let mut keep = page
        .events
        .partition_point(|event| event.stamp.seq <= limit.seq);
    let held = page.events.get(keep)?.stamp;
    if let Cursor::Timestamp(_) = cursor {
        while keep > 0 && page.events[keep - 1].stamp.timestamp == held.timestamp {
            keep -= 1;
        }
    }
    let first = page.events[keep].stamp;
    page.events.truncate(keep);
    page.more = false;
    Some(first)
}

/// The 29's stamp of a page [`hold_back`] emptied: the request's cursor for the field it gave,
/// and just before the first held event for the other, so a next sync by either field gets that
/// event (and none is skipped: nothing of the user's lies between the cursor and it).
pub(super) fn cursor_before(cursor: Cursor, first_held: Stamp) -> Stamp {
    match cursor {
        Cursor::Seq(seq) => Stamp {
            seq,
            timestamp: first_held.timestamp.saturating_sub(1),
        },
        Cursor::Timestamp(timestamp) => Stamp {
            seq: first_held.seq.saturating_sub(1),
            timestamp,
        },
    }
}

#[cfg(test)]
mod tests;
