//! [`TimerStore`]: the blocking store of durable timers (layout and recovery in the module doc of
//! `timer`). One owner thread; no locks.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::checkpoint::{self, Checkpointer};
use super::files::{self, io, Segments};
use super::format::{self, Entry, Pos};
use super::{
    now_ms, DueTimer, TimerConfig, TimerId, BUCKET_FILES_OPEN_MAX, DIRTY_BUCKETS_CHECKPOINT,
    PAYLOAD_BYTES_MAX, REFILL_MAX,
};
use crate::error::{CoreError, Result};

/// Order of the in-memory window: due time, then bucket and index (unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    due_ms: i64,
    id: TimerId,
}

impl Key {
    const MAX: Key = Key {
        due_ms: i64::MAX,
        id: TimerId {
            bucket_ms: i64::MAX,
            index: u32::MAX,
        },
    };

    /// Below every key due at or after `due_ms`.
    fn at(due_ms: i64) -> Key {
        Key {
            due_ms,
            id: TimerId {
                bucket_ms: i64::MIN,
                index: 0,
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Loc {
    pos: Pos,
    len: u32,
}

/// A window candidate while scanning a bucket: ordered by key only.
struct Candidate(Key, Loc);

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// What the store remembers of one bucket file without loading it.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    entries: u32,
    fired: u32,
    /// The latest log position an entry refers to: the file may be deleted only once the
    /// checkpoint is past it (else a replay would bring entries back into a deleted bucket).
    max_pos: Pos,
}

/// The bucket files and the counts kept for every bucket and segment.
struct Index {
    dir: PathBuf,
    width: i64,
    buckets: BTreeMap<i64, Bucket>,
    /// Pending (not fired) timers per payload segment; every existing segment has an entry.
    seg_refs: BTreeMap<u32, u64>,
    pending: u64,
    /// Bucket files open for appends, at most `BUCKET_FILES_OPEN_MAX`.
    open: HashMap<i64, File>,
    /// Bucket files appended to since the last checkpoint.
    dirty: HashSet<i64>,
    /// A bucket file was created since the last checkpoint.
    dir_dirty: bool,
    /// Buckets whose timers all fired, to delete once that is durable and the checkpoint is
    /// past them.
    done: BTreeSet<i64>,
}

impl Index {
    fn bucket_of(&self, due_ms: i64) -> i64 {
        due_ms.div_euclid(self.width).saturating_mul(self.width)
    }

    /// Appends an index entry for the record at `pos`; the new timer's id.
    fn append(&mut self, due_ms: i64, pos: Pos, len: u32) -> Result<TimerId> {
        let bucket_ms = self.bucket_of(due_ms);
        let path = files::bucket_path(&self.dir, bucket_ms, "idx");
        if !self.open.contains_key(&bucket_ms) {
            if self.open.len() >= BUCKET_FILES_OPEN_MAX {
                self.open.clear();
            }
            let (file, created) = files::open_append(&path)?;
            self.dir_dirty |= created;
            self.open.insert(bucket_ms, file);
        }
        let entry = format::encode_entry(&Entry { due_ms, pos, len });
        let file = self.open.get_mut(&bucket_ms).expect("opened above");
        file.write_all(&entry).map_err(io(&path))?;
        self.dirty.insert(bucket_ms);
        let bucket = self.buckets.entry(bucket_ms).or_default();
        let index = bucket.entries;
        bucket.entries += 1;
        bucket.max_pos = bucket.max_pos.max(pos);
        self.done.remove(&bucket_ms);
        self.pending += 1;
        *self.seg_refs.entry(pos.segment).or_default() += 1;
        Ok(TimerId { bucket_ms, index })
    }

    /// Counts a pending timer of `segment` in `bucket_ms` as fired.
    fn count_fired(&mut self, bucket_ms: i64, segment: u32) {
        if let Some(bucket) = self.buckets.get_mut(&bucket_ms) {
            bucket.fired += 1;
            if bucket.fired >= bucket.entries {
                self.done.insert(bucket_ms);
            }
        }
        self.pending = self.pending.saturating_sub(1);
        if let Some(refs) = self.seg_refs.get_mut(&segment) {
            *refs = refs.saturating_sub(1);
        }
    }
}

/// Durable timers in a directory: schedule, take what is due, mark it fired. Blocking; meant to
/// be owned by one thread ([`super::TimerService`] does that).
pub struct TimerStore {
    config: TimerConfig,
    segments: Segments,
    ix: Index,
    /// Every log position before this has its bucket entry durable.
    checkpoint: Pos,
    /// A segment was rolled since the last checkpoint.
    rolled: bool,
    /// The window: every pending timer with a key below `bound` that is not in flight, sorted.
    window: BTreeMap<Key, Loc>,
    bound: Key,
    /// Handed out by `take_due`, not yet marked fired: their segment.
    in_flight: HashMap<TimerId, u32>,
    /// Fired-mark files appended to since the last sync.
    fired_files: HashMap<i64, File>,
    fired_dir_dirty: bool,
    checkpointer: Checkpointer,
    /// Checkpoints taken since open (tests use it to know which index bytes are durable).
    checkpoints: u64,
    /// The `now_ms` of the last `take_due`: a refill loads past the first non-empty bucket
    /// only what is already due by then.
    last_now: i64,
}

impl TimerStore {
    /// Opens (creating) the store in `dir`, recovering from whatever a crash left: torn tails
    /// are cut, the log after the checkpoint is re-indexed, marks of lost records dropped.
    pub fn open(dir: &Path, config: TimerConfig) -> Result<TimerStore> {
        validate(&config)?;
        let buckets_dir = dir.join("buckets");
        let segments_dir = dir.join("segments");
        for d in [dir.to_path_buf(), buckets_dir.clone(), segments_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let checkpoint_path = dir.join("checkpoint");
        let (checkpoint, width) = match std::fs::read(&checkpoint_path) {
            Ok(bytes) => format::decode_checkpoint(&bytes).ok_or_else(|| {
                CoreError::Corrupt(format!("{}: bad checkpoint", checkpoint_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Pos::default(), config.bucket_width_ms)
            }
            Err(e) => return Err(io(&checkpoint_path)(e)),
        };
        if width != config.bucket_width_ms {
            tracing::warn!(
                stored = width,
                configured = config.bucket_width_ms,
                "timer store keeps the bucket width it was created with"
            );
        }
        let mut ix = Index {
            dir: buckets_dir.clone(),
            width,
            buckets: BTreeMap::new(),
            seg_refs: BTreeMap::new(),
            pending: 0,
            open: HashMap::new(),
            dirty: HashSet::new(),
            dir_dirty: false,
            done: BTreeSet::new(),
        };
        for id in files::segment_ids(&segments_dir)? {
            ix.seg_refs.insert(id, 0);
        }
        // Marks naming entries the checkpoint cut: the replay may bring those back.
        let mut marks_past_end: HashMap<i64, HashSet<u32>> = HashMap::new();
        let idx_starts = files::bucket_starts(&buckets_dir, "idx")?;
        for &start in &idx_starts {
            let marks =
                files::read_marks_and_cut(&files::bucket_path(&buckets_dir, start, "fired"))?;
            let marks: HashSet<u32> = marks.into_iter().collect();
            let path = files::bucket_path(&buckets_dir, start, "idx");
            let mut bucket = Bucket::default();
            let (kept, len) = files::scan_entries(&path, |index, entry| {
                if entry.pos >= checkpoint {
                    return false;
                }
                bucket.max_pos = bucket.max_pos.max(entry.pos);
                if marks.contains(&index) {
                    bucket.fired += 1;
                } else {
                    ix.pending += 1;
                    *ix.seg_refs.entry(entry.pos.segment).or_default() += 1;
                }
                true
            })?;
            bucket.entries = kept;
            if len != u64::from(kept) * format::ENTRY_BYTES as u64 {
                files::cut_entries(&path, kept)?;
            }
            let past: HashSet<u32> = marks.into_iter().filter(|&m| m >= kept).collect();
            if !past.is_empty() {
                marks_past_end.insert(start, past);
            }
            ix.buckets.insert(start, bucket);
        }
        // Marks without a bucket file: left by a deletion the crash interrupted.
        for start in files::bucket_starts(&buckets_dir, "fired")? {
            if !ix.buckets.contains_key(&start) {
                files::remove(&files::bucket_path(&buckets_dir, start, "fired"))?;
                ix.dir_dirty = true;
            }
        }
        let mut replayed = 0u64;
        let segments = Segments::open(
            &segments_dir,
            config.segment_bytes,
            checkpoint,
            |pos, due, len| {
                let id = ix.append(due, pos, len)?;
                if marks_past_end
                    .get(&id.bucket_ms)
                    .is_some_and(|m| m.contains(&id.index))
                {
                    ix.count_fired(id.bucket_ms, pos.segment);
                }
                replayed += 1;
                Ok(())
            },
        )?;
        ix.seg_refs.entry(segments.active_id()).or_default();
        for (start, past) in marks_past_end {
            let entries = ix.buckets.get(&start).map_or(0, |b| b.entries);
            if past.iter().any(|&m| m >= entries) {
                let path = files::bucket_path(&buckets_dir, start, "fired");
                let mut keep = files::read_marks(&path)?;
                keep.retain(|&m| m < entries);
                files::rewrite_marks(&buckets_dir, &path, &keep)?;
            }
        }
        for (&start, bucket) in &ix.buckets {
            if bucket.fired >= bucket.entries {
                ix.done.insert(start);
            }
        }
        tracing::debug!(dir = %dir.display(), pending = ix.pending, replayed, buckets = ix.buckets.len(), "opened timer store");
        let checkpointer = Checkpointer::new(dir, config.background_checkpoints)?;
        let mut store = TimerStore {
            config: TimerConfig {
                bucket_width_ms: width,
                ..config
            },
            segments,
            ix,
            checkpoint,
            rolled: true,
            window: BTreeMap::new(),
            bound: Key::at(i64::MIN),
            in_flight: HashMap::new(),
            fired_files: HashMap::new(),
            fired_dir_dirty: false,
            last_now: i64::MIN,
            checkpoints: 0,
            checkpointer,
        };
        store.checkpoint(true)?;
        store.reclaim()?;
        store.refill()?;
        Ok(store)
    }

    /// Files a timer due at `due_ms` (wall-clock ms; a past time fires at once). Durable only
    /// after the next [`sync`](Self::sync).
    pub fn schedule(&mut self, due_ms: i64, payload: &[u8]) -> Result<TimerId> {
        let latest = now_ms().saturating_add(self.config.max_delay_ms);
        if due_ms < 0 || due_ms > latest {
            return Err(CoreError::InvalidConfig {
                key: "delay".into(),
                value: due_ms.to_string(),
                reason: format!(
                    "due time must be between 0 and now + max_delay_ms ({} ms)",
                    self.config.max_delay_ms
                ),
            });
        }
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(CoreError::TooLarge {
                size: payload.len(),
                max: PAYLOAD_BYTES_MAX as u64,
            });
        }
        let (pos, rolled) = self.segments.append(due_ms, payload)?;
        if rolled {
            self.rolled = true;
            self.ix.seg_refs.entry(pos.segment).or_default();
        }
        let id = self.ix.append(due_ms, pos, payload.len() as u32)?;
        let key = Key { due_ms, id };
        if key < self.bound {
            self.window.insert(
                key,
                Loc {
                    pos,
                    len: payload.len() as u32,
                },
            );
            while self.window.len() > self.config.loaded_max {
                let (evicted, _) = self.window.pop_last().expect("over a non-zero limit");
                self.bound = evicted;
            }
        }
        Ok(id)
    }

    /// Makes durable every schedule and fired mark so far; takes a checkpoint when one is due
    /// and deletes the files nothing pending refers to any more.
    pub fn sync(&mut self) -> Result<()> {
        // The log first: a durable mark must never name a record that is not.
        self.segments.sync()?;
        let buckets_dir = self.ix.dir.clone();
        for (start, file) in self.fired_files.drain() {
            file.sync_data()
                .map_err(io(&files::bucket_path(&buckets_dir, start, "fired")))?;
        }
        if std::mem::take(&mut self.fired_dir_dirty) {
            files::sync_dir(&buckets_dir)?;
        }
        if let Some(outcome) = self.checkpointer.finished(false) {
            self.apply_checkpoint(outcome)?;
        }
        if !self.checkpointer.running()
            && (self.rolled || self.ix.dirty.len() >= DIRTY_BUCKETS_CHECKPOINT)
        {
            self.checkpoint(false)?;
        }
        self.reclaim()
    }

    /// Timers due by `now_ms`, earliest first, at most `max` (and no more than the in-flight
    /// limit allows). Each is handed out once per open: it comes back after a reopen unless it
    /// was marked fired and synced.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Result<Vec<DueTimer>> {
        self.last_now = self.last_now.max(now_ms);
        let mut due = Vec::new();
        while due.len() < max && self.in_flight.len() < self.config.in_flight_max {
            if self.window.is_empty() {
                self.refill()?;
            }
            let Some((&key, &loc)) = self.window.first_key_value() else {
                break;
            };
            if key.due_ms > now_ms {
                break;
            }
            self.window.pop_first();
            let payload = match self.segments.read(loc.pos, loc.len) {
                Ok(payload) => payload,
                Err(e) => {
                    self.window.insert(key, loc);
                    return Err(e);
                }
            };
            self.in_flight.insert(key.id, loc.pos.segment);
            match payload {
                Some(payload) => due.push(DueTimer {
                    id: key.id,
                    due_ms: key.due_ms,
                    payload,
                }),
                None => {
                    tracing::error!(?key.id, ?loc.pos, "timer payload missing or corrupt: dropping the timer");
                    self.mark_fired(&[key.id])?;
                }
            }
        }
        if self.window.is_empty() {
            self.refill()?;
        }
        Ok(due)
    }

    /// Records that these timers were delivered (durable at the next sync). Ids not handed out
    /// by `take_due` since this store was opened are ignored.
    pub fn mark_fired(&mut self, ids: &[TimerId]) -> Result<()> {
        let mut marks: HashMap<i64, Vec<u8>> = HashMap::new();
        for id in ids {
            if let Some(segment) = self.in_flight.remove(id) {
                self.ix.count_fired(id.bucket_ms, segment);
                marks
                    .entry(id.bucket_ms)
                    .or_default()
                    .extend_from_slice(&format::encode_mark(id.index));
            }
        }
        for (start, bytes) in marks {
            let path = files::bucket_path(&self.ix.dir, start, "fired");
            if !self.fired_files.contains_key(&start) {
                let (file, created) = files::open_append(&path)?;
                self.fired_dir_dirty |= created;
                self.fired_files.insert(start, file);
            }
            let file = self.fired_files.get_mut(&start).expect("opened above");
            file.write_all(&bytes).map_err(io(&path))?;
        }
        Ok(())
    }

    /// The earliest due time of a timer not yet handed out, if any.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.window.first_key_value().map(|(k, _)| k.due_ms)
    }

    /// Timers scheduled and not marked fired (in flight ones included).
    pub fn pending(&self) -> u64 {
        self.ix.pending
    }

    /// Timers held in memory: the loaded window plus those in flight. Bounded by
    /// `loaded_max + in_flight_max`.
    pub fn in_memory(&self) -> usize {
        self.window.len() + self.in_flight.len()
    }

    /// Timers handed out by `take_due` and not yet marked fired.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The settings in force (the bucket width is the one the store was created with).
    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    /// Checkpoints taken since open.
    #[cfg(test)]
    pub(super) fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// Bucket files on disk.
    pub fn bucket_files(&self) -> usize {
        self.ix.buckets.len()
    }

    /// Syncs and checkpoints, so the next open replays nothing.
    pub fn close(mut self) -> Result<()> {
        self.sync()?;
        self.checkpoint(true)
    }

    /// Starts a checkpoint of everything written so far (in the background unless `inline`,
    /// or unless the store was configured without one); an inline one is done on return.
    fn checkpoint(&mut self, inline: bool) -> Result<()> {
        if inline {
            self.await_checkpoint()?;
        }
        self.segments.sync()?;
        let job = checkpoint::Job {
            end: self.segments.end(),
            width_ms: self.ix.width,
            buckets: self.ix.dirty.drain().collect(),
            sync_dir: std::mem::take(&mut self.ix.dir_dirty),
        };
        self.rolled = false;
        match self.checkpointer.start(job, inline) {
            Some(outcome) => self.apply_checkpoint(outcome),
            None => Ok(()),
        }
    }

    /// Waits for a background checkpoint, if one runs.
    fn await_checkpoint(&mut self) -> Result<()> {
        match self.checkpointer.finished(true) {
            Some(outcome) => self.apply_checkpoint(outcome),
            None => Ok(()),
        }
    }

    fn apply_checkpoint(
        &mut self,
        outcome: std::result::Result<Pos, (CoreError, checkpoint::Job)>,
    ) -> Result<()> {
        match outcome {
            Ok(end) => {
                self.checkpoint = end;
                self.checkpoints += 1;
                Ok(())
            }
            Err((e, job)) => {
                // Retried with the next one.
                self.ix.dirty.extend(job.buckets);
                self.ix.dir_dirty |= job.sync_dir;
                self.rolled = true;
                Err(e)
            }
        }
    }

    /// Deletes bucket files whose timers all fired (marks synced, entries behind the
    /// checkpoint), then segments no pending timer refers to (behind the checkpoint).
    fn reclaim(&mut self) -> Result<()> {
        let deletable: Vec<i64> = self
            .ix
            .done
            .iter()
            .copied()
            .filter(|start| {
                self.ix
                    .buckets
                    .get(start)
                    .is_some_and(|b| b.fired >= b.entries && b.max_pos < self.checkpoint)
                    && !self.fired_files.contains_key(start)
            })
            .collect();
        for start in &deletable {
            files::remove(&files::bucket_path(&self.ix.dir, *start, "idx"))?;
            self.ix.open.remove(start);
            self.ix.dirty.remove(start);
            self.ix.buckets.remove(start);
            self.ix.done.remove(start);
        }
        if !deletable.is_empty() {
            // The index files are gone for good before their marks go: a mark file outliving
            // its index is removed at open, an index outliving its marks would fire again.
            files::sync_dir(&self.ix.dir)?;
            for start in &deletable {
                files::remove(&files::bucket_path(&self.ix.dir, *start, "fired"))?;
            }
        }
        let active = self.segments.active_id();
        let unused: Vec<u32> = self
            .ix
            .seg_refs
            .range(..self.checkpoint.segment)
            .filter(|&(&id, &refs)| refs == 0 && id != active)
            .map(|(&id, _)| id)
            .collect();
        for id in unused {
            self.segments.delete(id)?;
            self.ix.seg_refs.remove(&id);
        }
        Ok(())
    }

    /// Loads the next pending timers at or above `bound` into the window: whole buckets while
    /// they fit, the first non-empty one always (its `room` earliest timers if it does not fit),
    /// more only while they are already due.
    fn refill(&mut self) -> Result<()> {
        let mut room = self
            .config
            .loaded_max
            .saturating_sub(self.window.len())
            .min(REFILL_MAX);
        if self.bound == Key::MAX || room == 0 {
            return Ok(());
        }
        let mut cursor = self.ix.bucket_of(self.bound.due_ms);
        let mut loaded_any = false;
        loop {
            let Some((&start, &bucket)) = self.ix.buckets.range(cursor..).next() else {
                self.bound = Key::MAX;
                return Ok(());
            };
            cursor = start.saturating_add(1);
            if bucket.fired >= bucket.entries {
                continue;
            }
            if loaded_any && start > self.last_now {
                self.bound = Key::at(start);
                return Ok(());
            }
            let fired = read_fired_bits(&self.ix.dir, start, bucket.entries)?;
            let mut heap = BinaryHeap::with_capacity((room + 1).min(bucket.entries as usize));
            let bound = self.bound;
            let in_flight = &self.in_flight;
            let path = files::bucket_path(&self.ix.dir, start, "idx");
            files::scan_entries(&path, |index, entry| {
                if index >= bucket.entries {
                    return false;
                }
                let id = TimerId {
                    bucket_ms: start,
                    index,
                };
                let key = Key {
                    due_ms: entry.due_ms,
                    id,
                };
                let is_fired = fired[index as usize / 64] & (1 << (index % 64)) != 0;
                if key >= bound && !is_fired && !in_flight.contains_key(&id) {
                    let loc = Loc {
                        pos: entry.pos,
                        len: entry.len,
                    };
                    if heap.len() <= room {
                        heap.push(Candidate(key, loc));
                    } else if heap.peek().is_some_and(|top: &Candidate| key < top.0) {
                        heap.pop();
                        heap.push(Candidate(key, loc));
                    }
                }
                true
            })?;
            if heap.len() > room {
                let Candidate(first_left, _) = heap.pop().expect("more than room");
                self.window
                    .extend(heap.into_iter().map(|Candidate(k, l)| (k, l)));
                self.bound = first_left;
                return Ok(());
            }
            room -= heap.len();
            loaded_any |= !heap.is_empty();
            self.window
                .extend(heap.into_iter().map(|Candidate(k, l)| (k, l)));
            if room == 0 {
                self.bound = Key::at(start.saturating_add(self.ix.width));
                return Ok(());
            }
        }
    }
}

/// A bucket's fired marks as a bitset of `entries` bits.
fn read_fired_bits(dir: &Path, start: i64, entries: u32) -> Result<Vec<u64>> {
    let mut bits = vec![0u64; (entries as usize).div_ceil(64)];
    for m in files::read_marks(&files::bucket_path(dir, start, "fired"))? {
        if m < entries {
            bits[m as usize / 64] |= 1 << (m % 64);
        }
    }
    Ok(bits)
}

fn validate(config: &TimerConfig) -> Result<()> {
    let invalid = |key: &str, value: String, reason: &str| {
        Err(CoreError::InvalidConfig {
            key: key.into(),
            value,
            reason: reason.into(),
        })
    };
    if config.bucket_width_ms <= 0 {
        return invalid(
            "bucket_width_ms",
            config.bucket_width_ms.to_string(),
            "must be positive",
        );
    }
    if config.max_delay_ms < 0 {
        return invalid(
            "max_delay_ms",
            config.max_delay_ms.to_string(),
            "must not be negative",
        );
    }
    if config.loaded_max == 0 || config.in_flight_max == 0 {
        return invalid(
            "loaded_max",
            config.loaded_max.to_string(),
            "window limits must be at least 1",
        );
    }
    if (config.segment_bytes as usize) < 4096 {
        return invalid(
            "segment_bytes",
            config.segment_bytes.to_string(),
            "at least 4096",
        );
    }
    Ok(())
}
