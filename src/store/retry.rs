//! Answering a retried send: the index of recent sends ([`super::client_ids`]) first, then the
//! `client_ids` table, and rebuilding the index from the log when the store opens.

use std::ops::Bound;

use serde::Deserialize;
use uuid::Uuid;

use super::backend::{Direction, Table};
use super::client_ids::{Fingerprint, Sent};
use super::format::{read_clock_record, CLOCK_KEY};
use super::records::from_json;
use super::{message_id, read_u64, Store, StoreResult};
use crate::clock::Stamp;
use crate::protocol;

/// The rebuild reads this much more than the window: a send's timestamp can be below the wall
/// clock of its moment by a tick's length, or by an NTP step made since.
pub const REBUILD_SLACK_MS: u64 = 5 * 60 * 1000;

/// The `meta` record of the rebases (see [`Rebase`]) that still matter, 24 bytes each.
pub const REBASES_KEY: &[u8] = b"retry_rebases";

/// A start at which the wall clock was ahead of the retry index's time saved at the last
/// commit. That is real time passed while the server was down, or a wall clock corrected
/// forward (a host that ran without RTC before NTP): the two cannot be told apart, and taking
/// the second for the first would age every recent send by the correction and forget it. So
/// the sends made before that start (seq up to `upto`) count as `shift` ms younger than their
/// timestamps say: their age is the index's time passed while the server ran. A send made
/// just before a long outage is then recognised for a window after it; that is longer than
/// needed, never shorter. The record goes once everything it shifts is older than the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rebase {
    /// The seq ceiling at that start: no send of a later run has a seq at or below it.
    upto: u64,
    shift: u64,
    /// The latest time (in the index's time now) any send it shifts can have: that start's
    /// index time, plus the shifts of the rebases since.
    bound: u64,
}

/// A send's timestamp moved to the index's time: see [`Rebase`].
fn effective(rebases: &[Rebase], seq: u64, ack_ts: u64) -> u64 {
    rebases
        .iter()
        .filter(|rebase| seq <= rebase.upto)
        .fold(ack_ts, |ts, rebase| ts.saturating_add(rebase.shift))
}

fn read_rebases(record: Option<&[u8]>) -> Vec<Rebase> {
    record
        .unwrap_or_default()
        .chunks_exact(24)
        .map(|r| Rebase {
            upto: read_u64(&r[..8]),
            shift: read_u64(&r[8..16]),
            bound: read_u64(&r[16..]),
        })
        .collect()
}

fn rebases_record(rebases: &[Rebase]) -> Vec<u8> {
    let mut record = Vec::with_capacity(24 * rebases.len());
    for rebase in rebases {
        record.extend_from_slice(&rebase.upto.to_be_bytes());
        record.extend_from_slice(&rebase.shift.to_be_bytes());
        record.extend_from_slice(&rebase.bound.to_be_bytes());
    }
    record
}

/// A send's (user, client id) with its fingerprint in the retry index: see [`Store::retry_key`].
pub struct RetryKey<'a> {
    user: Uuid,
    client_id: &'a str,
    fingerprint: Fingerprint,
}

impl Store {
    /// Rebuilds the index of recent sends from the window's log entries, and prunes the
    /// `client_ids` table of the records it no longer needs: those older than the window, and
    /// those the index now holds (their log entries name the client id). A send the index has
    /// no room for gets a record in the table.
    ///
    /// A send's timestamp is the wall clock when it was made (before format 5 it could only be
    /// ahead of it; give or take [`REBUILD_SLACK_MS`] for an NTP step). The window is counted
    /// back from the index's time, never the wall's alone: that is the saved index time when
    /// the wall is behind it, and when the wall is ahead, the sends before this start are
    /// shifted by the difference ([`Rebase`]), so that a send acknowledged within the window
    /// of the server's running time is recognised whichever way the clock was wrong.
    pub(super) fn load_client_ids(&mut self, window_ms: u64) -> StoreResult<()> {
        let now = self.recent_sends.now();
        let horizon = now.saturating_sub(window_ms + REBUILD_SLACK_MS);
        let rebases = self.rebase(now, horizon)?;
        let total_shift = rebases.iter().map(|r| r.shift).sum::<u64>();
        // The oldest timestamp that can be in the window once shifted.
        let oldest = horizon.saturating_sub(total_shift);
        let from = self.first_seq_after(oldest.saturating_sub(1))?;
        let backend = &*self.backend;
        let all = Bound::Unbounded;
        let mut changed = false;
        let mut written = Ok(());
        for entry in backend.range(Table::Groups, all, all, Direction::Forward) {
            let Ok(group) = Uuid::from_slice(&entry?.0) else {
                continue;
            };
            let recent_sends = &mut self.recent_sends;
            self.log.client_sends(
                group,
                from,
                oldest,
                |user, client_id, message_id, ack_ts| {
                    let sent = Sent { message_id, ack_ts };
                    let seq = message_id::location(message_id).0;
                    let at = effective(&rebases, seq, ack_ts);
                    if at < horizon {
                        return;
                    }
                    // Made no later than its timestamp (and the slack, for a clock stepped
                    // back since), nor than now (the clock may run ahead).
                    let made = at.saturating_add(REBUILD_SLACK_MS).min(now);
                    let fingerprint = recent_sends.fingerprint(user, client_id);
                    if !recent_sends.insert_at(fingerprint, made, now, sent) && written.is_ok() {
                        let key = client_key(user, client_id);
                        written = backend.put(Table::ClientIds, &key, &client_record(sent));
                        changed = true;
                    }
                },
            )?;
        }
        written?;
        for entry in backend.range(Table::ClientIds, all, all, Direction::Forward) {
            let (key, value) = entry?;
            let record = read_client_record(&value);
            let ack_ts = match record {
                Some(sent) => {
                    let seq = message_id::location(sent.message_id).0;
                    effective(&rebases, seq, sent.ack_ts)
                }
                // Format 2 kept the ack's JSON, and its log entries do not name the client id;
                // the upgrade made its timestamp its seq. An ack that does not parse has no
                // age: it is kept rather than guessed at.
                None => {
                    json_ack_timestamp(&value).map_or(u64::MAX, |ts| effective(&rebases, ts, ts))
                }
            };
            let held = record.is_some_and(|sent| {
                key.split_at_checked(16).is_some_and(|(user, client_id)| {
                    let user = Uuid::from_slice(user).expect("16 bytes");
                    std::str::from_utf8(client_id).is_ok_and(|id| {
                        self.recent_sends
                            .get(self.recent_sends.fingerprint(user, id))
                            == Some(sent)
                    })
                })
            });
            if ack_ts < horizon || held {
                backend.remove(Table::ClientIds, &key)?;
                changed = true;
            }
        }
        if changed {
            backend.flush()?;
        }
        let mut records = backend.range(Table::ClientIds, all, all, Direction::Forward);
        self.client_id_table_used = records.next().transpose()?.is_some();
        Ok(())
    }

    /// The rebases that still matter at a start whose index time is `now`, the one this start
    /// makes included (when the wall is ahead of the saved index time by more than the slack),
    /// stored before the store serves anything.
    fn rebase(&self, now: u64, horizon: u64) -> StoreResult<Vec<Rebase>> {
        let backend = &*self.backend;
        let clocks = backend.get(Table::Meta, CLOCK_KEY)?;
        let (ceiling, saved) = read_clock_record(clocks.as_deref());
        let stored = backend.get(Table::Meta, REBASES_KEY)?;
        let mut rebases = read_rebases(stored.as_deref());
        let before = rebases.clone();
        // A start that committed nothing saved no index time since: its rebase is made again
        // from the same saved time, not added to.
        if let Some(last) = rebases.last().copied() {
            if last.upto == ceiling.seq && saved < last.bound {
                rebases.pop();
                for rebase in &mut rebases {
                    rebase.bound = rebase.bound.saturating_sub(last.shift);
                }
            }
        }
        if saved > 0 && now > saved + REBUILD_SLACK_MS {
            let shift = now - saved;
            for rebase in &mut rebases {
                rebase.bound = rebase.bound.saturating_add(shift);
            }
            rebases.push(Rebase {
                upto: ceiling.seq,
                shift,
                bound: now,
            });
        }
        // Everything an old rebase shifts is older than the window even shifted: it goes (and
        // those sends count as older still, which changes nothing).
        rebases.retain(|rebase| rebase.bound.saturating_add(REBUILD_SLACK_MS) >= horizon);
        if rebases != before {
            backend.put(Table::Meta, REBASES_KEY, &rebases_record(&rebases))?;
            backend.flush()?;
        }
        Ok(rebases)
    }

    /// A send's (user, client id), fingerprinted once for its lookup ([`Store::client_ack`])
    /// and its record ([`Store::put_client_ack`]). The index's lines for it are fetched from
    /// memory meanwhile: the lookup is fastest some work after this.
    pub fn retry_key<'a>(&self, user: Uuid, client_id: &'a str) -> RetryKey<'a> {
        let fingerprint = self.recent_sends.fingerprint(user, client_id);
        self.recent_sends.prefetch(fingerprint);
        RetryKey {
            user,
            client_id,
            fingerprint,
        }
    }

    /// The ack event (21) a send with this client id was answered with, if any: rendered again
    /// from the message id and the ack's timestamp kept for it, byte for byte what was sent (a
    /// record of format 2 holds the ack's JSON itself, and is answered as it is).
    pub fn client_ack(&self, key: &RetryKey) -> StoreResult<Option<String>> {
        if let Some(sent) = self.recent_sends.get(key.fingerprint) {
            return Ok(Some(render_ack(key.client_id, sent)));
        }
        if !self.client_id_table_used {
            return Ok(None);
        }
        let Some(value) = self.get(Table::ClientIds, &client_key(key.user, key.client_id))? else {
            return Ok(None);
        };
        let ack = match read_client_record(&value) {
            Some(sent) => render_ack(key.client_id, sent),
            // Format 2's JSON, stamped with its timestamp, which the upgrade made its seq.
            None => {
                let seq = json_ack_timestamp(&value).unwrap_or(0);
                String::from_utf8_lossy(&protocol::with_seq(&value, seq)).into_owned()
            }
        };
        Ok(Some(ack))
    }

    /// Records which message a send with this client id stored, for its retries. The message's
    /// log entry, written in the same tick, names the client id, so the index of recent sends is
    /// enough; when it is full, the record goes into the `client_ids` table.
    pub fn put_client_ack(&mut self, key: &RetryKey, message_id: Uuid, ack_ts: u64) {
        let sent = Sent { message_id, ack_ts };
        if !self.recent_sends.insert(key.fingerprint, sent) {
            self.put(
                Table::ClientIds,
                client_key(key.user, key.client_id),
                client_record(sent),
            );
            self.client_id_table_used = true;
        }
    }

    /// Sends the index of recent client ids holds.
    pub fn recent_client_ids(&self) -> usize {
        self.recent_sends.held()
    }
}

/// The ack (21) of a send, rendered again: its seq follows the message's, which the id carries.
fn render_ack(client_id: &str, sent: Sent) -> String {
    let stamp = Stamp {
        seq: message_id::ack_seq(sent.message_id),
        timestamp: sent.ack_ts,
    };
    protocol::sent_event(Some(client_id), stamp, sent.message_id)
}

/// A `client_ids` record: the message id and the ack's timestamp (24 bytes; format 2 kept the
/// ack's JSON, about 100).
pub fn client_record(sent: Sent) -> Vec<u8> {
    let mut value = Vec::with_capacity(24);
    value.extend_from_slice(sent.message_id.as_bytes());
    value.extend_from_slice(&sent.ack_ts.to_be_bytes());
    value
}

/// A record [`client_record`] wrote; `None` for one of format 2 (the ack's JSON).
fn read_client_record(value: &[u8]) -> Option<Sent> {
    let record = <[u8; 24]>::try_from(value).ok()?;
    Some(Sent {
        message_id: Uuid::from_slice(&record[..16]).expect("16 bytes"),
        ack_ts: read_u64(&record[16..]),
    })
}

/// The timestamp of an ack kept as JSON (a record of format 2).
fn json_ack_timestamp(ack: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Ack {
        timestamp: u64,
    }
    from_json::<Ack>(ack).map(|ack| ack.timestamp)
}

pub fn client_key(user: Uuid, client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + client_id.len());
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(client_id.as_bytes());
    key
}
