//! Which message each recent send with a client `id` stored, so that a retry is answered with
//! the original ack: an index in memory, rebuilt from the log when the store opens.
//!
//! The log entry of a send already holds its client id (see [`super::log`]), so the index needs
//! no durable copy of its own: a record per send at a scattered (user, id) key costs far more
//! than the message itself (docs/BENCHMARKS.md, "With client ids").
//!
//! Retries are recognised for at least the window (24 hours by default, the protocol's minimum)
//! of real time (of the server's running time across a restart whose wall clock is ahead of
//! the last run's: see [`super::retry`]). Ages are wall-clock milliseconds kept by the monotonic clock, not server
//! timestamps, which stand still while the wall clock is behind the last one. Sends are kept in generations, the slots of a fixed grid a quarter
//! of the window wide, so a send lands in the same generation whatever order sends arrive in
//! (the rebuild reads one group after another). A generation goes once the window has passed its
//! end: memory holds between one window and one and a quarter of sends. When `max_entries` are
//! held, [`RecentSends::insert`] refuses, and the store writes that send's record into its
//! `client_ids` table as every send's used to be: slower, and answered for as long as it stays.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Instant;

use uuid::Uuid;

/// How long retries are recognised, and how many sends the index holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdLimits {
    pub window_ms: u64,
    pub max_entries: usize,
}

impl ClientIdLimits {
    pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;
    /// For tests and embedding, and when the memory is unknown (the server's own default follows
    /// the machine's memory, see `config`): about 50 to 60 MiB resident when full (a send's
    /// record is 40 bytes, and its slot 8 in a table 3/8 to 3/4 full), more allocated while a
    /// shard's record list has just doubled (docs/BENCHMARKS.md, "Figures the code relies on").
    pub const DEFAULT: ClientIdLimits = ClientIdLimits {
        window_ms: Self::DAY_MS,
        max_entries: 1_000_000,
    };
}

/// What a retry is answered with: the ack is rendered again from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub message_id: Uuid,
    pub ack_ts: u64,
}

/// Two SipHash-1-3 values of (user, id), each with its own tag, under a key drawn at each start:
/// nobody can pick ids that collide, and by chance two of a million sends share a fingerprint
/// with probability 10^-27. It is never stored: the index is rebuilt at start. A send computes
/// it once ([`RecentSends::fingerprint`]) for its lookup and its insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64, u64);

impl Fingerprint {
    /// Which shard of a generation holds it: picked by the second half (the first is the
    /// table's hash).
    fn shard(&self) -> usize {
        self.1 as usize % SHARDS
    }

    /// The high half of the first word: what a slot keeps of it, and the home slot's bits.
    fn tag(&self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One shard of a generation: its sends in arrival order, and an open-addressing table over
/// them. hashbrown kept its control bytes apart from its entries, so a send with a new id missed
/// the caches twice, each miss with a TLB miss in tables of 100+ MB; here a send's lookup and
/// insert touch one line of 8-byte slots, which [`Shard::prefetch`] can ask for early, and its
/// record goes to the end of `sends`, whose lines are written one after another.
struct Shard {
    /// Linear probing; a power of two long. A slot is [`EMPTY`], [`REMOVED`], or a send's tag
    /// (the high half of its fingerprint's first word) over its position in `sends` plus one.
    /// The tag also picks the home slot, so the table can grow without reading `sends`.
    slots: Vec<u64>,
    /// Slots not empty (removed ones included), which decides when the table is rebuilt.
    used: usize,
    /// Slots [`REMOVED`].
    removed: usize,
    sends: Vec<(Fingerprint, Sent)>,
}

const EMPTY: u64 = 0;
/// A send taken out ([`Shard::remove`]): probing goes on past it, no tag matches it, and the
/// next rebuild drops it. Its record stays in `sends` until the generation goes.
const REMOVED: u64 = 1 << 32;
/// The share of slots in use past which a table is rebuilt (doubled, as a rule): 3/4 of slots,
/// about 8 probed (two lines) for a lookup that finds nothing.
const LOAD_NUMERATOR: usize = 3;
const LOAD_DENOMINATOR: usize = 4;

impl Shard {
    fn with_capacity(sends: usize) -> Shard {
        let slots = (sends * LOAD_DENOMINATOR / LOAD_NUMERATOR + 1)
            .next_power_of_two()
            .max(8);
        Shard {
            slots: vec![EMPTY; slots],
            used: 0,
            removed: 0,
            sends: Vec::with_capacity(sends),
        }
    }

    fn home(&self, tag: u32) -> usize {
        tag as usize & (self.slots.len() - 1)
    }

    /// Asks the CPU for the line of `fingerprint`'s home slot, so that the lookup that follows
    /// a little later does not wait for memory.
    fn prefetch(&self, fingerprint: Fingerprint) {
        prefetch_line(&self.slots[self.home(fingerprint.tag())]);
    }

    /// Likewise for the line the next send's record goes into.
    fn prefetch_end(&self) {
        prefetch_line(self.sends.as_ptr().wrapping_add(self.sends.len()));
    }

    /// The slot holding `fingerprint`'s send, or the slot it would go into.
    fn find(&self, fingerprint: Fingerprint) -> Result<usize, usize> {
        let tag = fingerprint.tag();
        let mask = self.slots.len() - 1;
        let mut index = self.home(tag);
        let mut free = None;
        loop {
            let slot = self.slots[index];
            if slot == EMPTY {
                return Err(free.unwrap_or(index));
            }
            if slot == REMOVED {
                free.get_or_insert(index);
            } else if (slot >> 32) as u32 == tag && self.sends[position(slot)].0 == fingerprint {
                return Ok(index);
            }
            index = (index + 1) & mask;
        }
    }

    fn get(&self, fingerprint: Fingerprint) -> Option<Sent> {
        let index = self.find(fingerprint).ok()?;
        Some(self.sends[position(self.slots[index])].1)
    }

    /// Adds a send, or keeps the later ack of the one its fingerprint has; true when added.
    fn insert(&mut self, fingerprint: Fingerprint, sent: Sent) -> bool {
        match self.find(fingerprint) {
            Ok(index) => {
                let held = &mut self.sends[position(self.slots[index])].1;
                if held.ack_ts < sent.ack_ts {
                    *held = sent;
                }
                false
            }
            Err(index) => {
                if self.slots[index] == EMPTY {
                    self.used += 1;
                } else {
                    self.removed -= 1;
                }
                self.slots[index] = slot(fingerprint.tag(), self.sends.len());
                self.sends.push((fingerprint, sent));
                if self.used * LOAD_DENOMINATOR > self.slots.len() * LOAD_NUMERATOR {
                    // Doubled, unless most of what fills it was removed.
                    let live = self.used - self.removed;
                    let factor = if live * 2 < self.used { 1 } else { 2 };
                    self.rebuild(self.slots.len() * factor);
                }
                true
            }
        }
    }

    /// Takes a send out; its ack, if the shard held it.
    fn remove(&mut self, fingerprint: Fingerprint) -> Option<Sent> {
        let index = self.find(fingerprint).ok()?;
        let sent = self.sends[position(self.slots[index])].1;
        self.slots[index] = REMOVED;
        self.removed += 1;
        Some(sent)
    }

    /// Makes the table `slots` long, placing every send again from its slot alone (removed ones
    /// are left out): the old table is read in order and the new one is a 64th of the index.
    fn rebuild(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots]);
        let mask = self.slots.len() - 1;
        self.used = 0;
        self.removed = 0;
        for slot in old
            .into_iter()
            .filter(|&slot| slot != EMPTY && slot != REMOVED)
        {
            let mut index = self.home((slot >> 32) as u32);
            while self.slots[index] != EMPTY {
                index = (index + 1) & mask;
            }
            self.slots[index] = slot;
            self.used += 1;
        }
    }
}

fn slot(tag: u32, position: usize) -> u64 {
    let position = u32::try_from(position + 1).expect("a shard holds under 4 billion sends");
    (u64::from(tag) << 32) | u64::from(position)
}

fn position(slot: u64) -> usize {
    (slot as u32 - 1) as usize
}

/// A hint to the CPU to load the cache line at `value`; elsewhere than on x86-64 and AArch64,
/// nothing.
#[inline(always)]
fn prefetch_line<T>(value: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault, so any address will
    // do (the end of a full `Vec` is past its allocation).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(value.cast());
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `prfm` only touches the cache.
    unsafe {
        std::arch::asm!(
            "prfm pldl1keep, [{0}]",
            in(reg) value,
            options(nostack, readonly, preserves_flags)
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = value;
}

/// A generation's sends are spread over this many tables. A table that grows rehashes all of
/// itself at once, on the loop thread, a stall every connection would feel (docs/BENCHMARKS.md,
/// "Figures the code relies on"); a shard grows by a 64th of that.
const SHARDS: usize = 64;

/// The sends made (wall clock) from `slot` x span to the next slot.
struct Generation {
    slot: u64,
    shards: Vec<Shard>,
    len: usize,
}

pub struct RecentSends {
    limits: ClientIdLimits,
    /// The wall clock when the index was made, and the monotonic clock then: the index's time
    /// is the one plus what the other has counted since, so a step of the system clock while
    /// the server runs neither forgets recent sends nor keeps old ones for ever.
    opened_wall_ms: u64,
    opened: Instant,
    key: RandomState,
    /// Oldest first, one per slot that has sends.
    generations: VecDeque<Generation>,
    len: usize,
}

impl RecentSends {
    /// An empty index; `wall_ms` is the wall clock now.
    pub fn new(limits: ClientIdLimits, wall_ms: u64) -> RecentSends {
        RecentSends {
            limits,
            opened_wall_ms: wall_ms,
            opened: Instant::now(),
            key: RandomState::new(),
            generations: VecDeque::new(),
            len: 0,
        }
    }

    /// The fingerprint of a send's (user, id). (user, id) is absorbed once and the two halves
    /// differ only in their last byte, a tag: SipHash is a keyed pseudo-random function, so the
    /// halves are as independent as two hashes of different messages, at a little more than the
    /// cost of one (four separate hashes were a third of a send's index time).
    pub fn fingerprint(&self, user: Uuid, client_id: &str) -> Fingerprint {
        let mut absorbed = self.key.build_hasher();
        absorbed.write(user.as_bytes());
        // Ended by a byte no UTF-8 text holds, so that no (user, id) is a prefix of another.
        absorbed.write(client_id.as_bytes());
        absorbed.write_u8(0xff);
        let mut second = absorbed.clone();
        absorbed.write_u8(0);
        second.write_u8(1);
        Fingerprint(absorbed.finish(), second.finish())
    }

    /// The index's time: wall-clock ms that never jump.
    pub fn now(&self) -> u64 {
        self.opened_wall_ms + self.opened.elapsed().as_millis() as u64
    }

    /// Records a send made now; false when the index is full (see [`RecentSends::insert_at`]).
    pub fn insert(&mut self, fingerprint: Fingerprint, sent: Sent) -> bool {
        let now = self.now();
        self.insert_at(fingerprint, now, now, sent)
    }

    /// A generation's width: a quarter of the window.
    fn span(&self) -> u64 {
        (self.limits.window_ms / 4).max(1)
    }

    pub fn get(&self, fingerprint: Fingerprint) -> Option<Sent> {
        self.generations
            .iter()
            .rev()
            .find_map(|generation| generation.shards[fingerprint.shard()].get(fingerprint))
    }

    /// Asks the CPU for the lines a [`RecentSends::get`] and an insert of `fingerprint` will
    /// read: called when the fingerprint is known, some work before they are, so that a send
    /// does not wait for a line from memory (docs/BENCHMARKS.md, "Changes of 2026-12-06 (sixth
    /// session)").
    pub fn prefetch(&self, fingerprint: Fingerprint) {
        for generation in self.generations.iter().rev() {
            generation.shards[fingerprint.shard()].prefetch(fingerprint);
        }
        if let Some(newest) = self.generations.back() {
            newest.shards[fingerprint.shard()].prefetch_end();
        }
    }

    /// Records a send made at wall-clock time `at`, as of `now` (both in ms; `at` is `now`
    /// except while the index is rebuilt), after dropping the generations the window has passed.
    /// A send already older than the window is not kept. False when the index is full: the
    /// caller must keep the record elsewhere. Of two sends with one (user, id), the later ack
    /// is kept.
    pub fn insert_at(&mut self, fingerprint: Fingerprint, at: u64, now: u64, sent: Sent) -> bool {
        let span = self.span();
        let horizon = now.saturating_sub(self.limits.window_ms);
        while self
            .generations
            .front()
            .is_some_and(|oldest| (oldest.slot + 1) * span <= horizon)
        {
            let expired = self.generations.pop_front().expect("just seen");
            self.len -= expired.len;
        }
        if at < horizon {
            return true;
        }
        if self.len >= self.limits.max_entries {
            match self.take_older(fingerprint, sent) {
                Some(true) => {}
                Some(false) => return true,
                None => return false,
            }
        }
        let slot = at / span;
        let position = match self.generations.iter().rposition(|g| g.slot == slot) {
            Some(position) => position,
            None => self.generation(slot),
        };
        let generation = &mut self.generations[position];
        if generation.shards[fingerprint.shard()].insert(fingerprint, sent) {
            generation.len += 1;
            self.len += 1;
        }
        true
    }

    /// When the index is full, only a send whose (user, id) it holds (an id reused) may go in,
    /// so that the later ack wins wherever each one lands: the held one is taken out if it is
    /// older (`Some(true)`: room made), kept if not (`Some(false)`: nothing to add); `None` when
    /// the index does not hold it.
    fn take_older(&mut self, fingerprint: Fingerprint, sent: Sent) -> Option<bool> {
        let shard = fingerprint.shard();
        let (generation, held) = self.generations.iter_mut().find_map(|generation| {
            let held = generation.shards[shard].get(fingerprint)?;
            Some((generation, held))
        })?;
        if held.ack_ts >= sent.ack_ts {
            return Some(false);
        }
        generation.shards[shard].remove(fingerprint);
        generation.len -= 1;
        self.len -= 1;
        Some(true)
    }

    /// Makes the generation of `slot`, where it belongs in the order; its position.
    fn generation(&mut self, slot: u64) -> usize {
        let before = self.generations.iter().rposition(|g| g.slot < slot);
        // Sized like the newest, so that it seldom grows.
        let expected = self
            .generations
            .back()
            .map_or(0, |newest| newest.len / SHARDS);
        let shard = || Shard::with_capacity(expected);
        let position = before.map_or(0, |p| p + 1);
        self.generations.insert(
            position,
            Generation {
                slot,
                shards: (0..SHARDS).map(|_| shard()).collect(),
                len: 0,
            },
        );
        position
    }

    /// Sends held.
    pub fn held(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests;
