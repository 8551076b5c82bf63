//! The database file, with the space ahead of redb's writes filled with zeros in the background.
//!
//! redb grows its file with a plain `set_len`, which leaves the new space as a hole. The first
//! write into a hole makes the filesystem allocate blocks when the page is written back, so the
//! commit's `fdatasync` must also write the allocation's metadata (block bitmaps, extent tree,
//! inode), one synchronous write after another on ext4 without a journal. While a stream grows,
//! nearly every commit writes into fresh space and pays for that: a commit of eight new pages and
//! three rewritten ones took about 300 µs on this machine's disk, against about 200 µs once the
//! same pages were allocated and written before.
//!
//! [`PrefilledFile`] wraps redb's own [`FileBackend`] and keeps a thread that writes zeros into
//! the file's new space ahead of redb and syncs them, so that by the time a commit writes a page
//! there, the page is allocated and the commit's `fdatasync` writes data only. This is what
//! databases do with their logs (PostgreSQL fills each new WAL segment with zeros for the same
//! reason). Everything else goes to [`FileBackend`] unchanged, locking included.
//!
//! The zeros must never land on a page redb has written. All writes above the zeroed frontier
//! (below it there is nothing left to zero) take one lock, which the filling thread also holds
//! for each chunk it writes; each such write is recorded, and the filler leaves recorded ranges
//! alone. Writes below the frontier, nearly all of them once the filler is ahead, take no lock.
//! Only unused space is ever zeroed, so a crash at any moment leaves redb's file as redb wrote it.
//!
//! Bounds: the filler stays at most [`PrefilledFile::new`]'s `ahead` bytes past the highest byte
//! redb has written, so the file uses at most that much more disk than its written pages (redb
//! doubles its file as it grows, and the unused half stays a hole). The recorded ranges are those
//! written between the frontier and the highest write, merged, so at most the number of pages
//! redb writes in that stretch before the filler passes them. If filling fails (a full disk, an
//! I/O error), the filler stops and logs why; redb then writes into holes as it would without
//! it, and reports its own errors.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Zeros written by the filler in one locked write.
const CHUNK: usize = 1 << 20;

/// Zeros the filler writes between two syncs.
const SYNC_EVERY: u64 = 8 << 20;

static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// What the writers and the filler share.
#[derive(Debug)]
struct Shared {
    /// A second handle to the database file, for the filler's writes and syncs.
    file: File,
    /// Everything below this offset has been zeroed or written by redb: [`State::zeroed`], for
    /// writers that do not take the lock.
    zeroed: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    /// The file's length, as last set through the backend.
    len: u64,
    /// The zeroed frontier.
    zeroed: u64,
    /// Ranges redb wrote at or above the frontier (start → end), disjoint and merged.
    written: BTreeMap<u64, u64>,
    /// The end of the highest range redb wrote in the stretch it is filling (see
    /// [`State::record`]).
    high: u64,
    /// How far past `high` to fill.
    ahead: u64,
    stop: bool,
}

impl State {
    /// Where the filler stops.
    fn target(&self) -> u64 {
        self.len.min(self.high.saturating_add(self.ahead))
    }

    /// Records that redb wrote `start..end`, all at or above the frontier. A write within
    /// `ahead` of the highest one so far raises it; one beyond does not, since redb writes a
    /// page or two far out in space it has just added (allocator pages), and following those
    /// would fill the whole file.
    fn record(&mut self, mut start: u64, mut end: u64) {
        if start <= self.high.saturating_add(self.ahead) {
            self.high = self.high.max(end);
        }
        // Absorb every range that overlaps or touches this one.
        while let Some((&s, &e)) = self.written.range(..=end).next_back() {
            if e < start {
                break;
            }
            self.written.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.written.insert(start, end);
    }

    /// Moves the frontier to `to` and forgets the ranges wholly below it.
    fn advance(&mut self, to: u64) {
        self.zeroed = to;
        while let Some((&s, &e)) = self.written.first_key_value() {
            if e > to {
                break;
            }
            self.written.remove(&s);
        }
    }

    /// The parts of `start..end` that redb has not written.
    fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = start;
        // A range that starts before `start` may still reach into it.
        let first = self.written.range(..start).next_back().map_or(start, |(&s, _)| s);
        for (&s, &e) in self.written.range(first..end) {
            if s > at {
                gaps.push((at, s.min(end)));
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// redb's [`FileBackend`], with the file's new space zeroed ahead of redb's writes.
#[derive(Debug)]
pub struct PrefilledFile {
    inner: FileBackend,
    shared: Arc<Shared>,
    filler: Mutex<Option<JoinHandle<()>>>,
}

impl PrefilledFile {
    /// Wraps `file` (open for reading and writing) and starts the filler, which keeps up to
    /// `ahead` bytes past redb's highest write zeroed. Space that exists when this is called is
    /// left as it is.
    ///
    /// # Errors
    /// The file cannot be cloned or measured, or the thread cannot start.
    pub fn new(file: File, ahead: u64) -> std::io::Result<PrefilledFile> {
        let len = file.metadata()?.len();
        let shared = Arc::new(Shared {
            file: file.try_clone()?,
            zeroed: AtomicU64::new(len),
            state: Mutex::new(State {
                len,
                zeroed: len,
                written: BTreeMap::new(),
                high: 0,
                ahead,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let inner = FileBackend::new(file).map_err(std::io::Error::other)?;
        let filler = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("switchboard-fill".into())
                .spawn(move || fill(&shared))?
        };
        Ok(PrefilledFile { inner, shared, filler: Mutex::new(Some(filler)) })
    }

    fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        let handle = self.filler.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The filler: zeros the space from the frontier up to the target, a chunk at a time, syncing
/// every [`SYNC_EVERY`] bytes and whenever it catches up. It stops at the first I/O error.
fn fill(shared: &Shared) {
    if let Err(e) = fill_until_stopped(shared) {
        tracing::warn!(error = %e, "stopped filling the database file ahead of its writes");
    }
}

fn fill_until_stopped(shared: &Shared) -> std::io::Result<()> {
    let mut unsynced = 0u64;
    loop {
        let mut state = shared.lock();
        if unsynced > 0 && state.target() <= state.zeroed {
            drop(state);
            shared.file.sync_data()?;
            unsynced = 0;
            continue;
        }
        while !state.stop && state.target() <= state.zeroed {
            state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return Ok(());
        }
        let start = state.zeroed;
        let end = state.target().min(start + CHUNK as u64);
        for (from, to) in state.gaps(start, end) {
            let zeros = ZEROS.get(..(to - from) as usize).unwrap_or(&ZEROS);
            shared.file.write_all_at(zeros, from)?;
        }
        state.advance(end);
        shared.zeroed.store(end, Ordering::Release);
        drop(state);
        unsynced += end - start;
        if unsynced >= SYNC_EVERY {
            shared.file.sync_data()?;
            unsynced = 0;
        }
    }
}

impl Drop for PrefilledFile {
    fn drop(&mut self) {
        self.stop();
    }
}

impl StorageBackend for PrefilledFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut state = self.shared.lock();
        // Under the lock: the filler never writes past the length it last saw.
        self.inner.set_len(len)?;
        state.len = len;
        if len < state.zeroed {
            state.zeroed = len;
            self.shared.zeroed.store(len, Ordering::Release);
        }
        state.written.retain(|&s, _| s < len);
        if let Some(mut last) = state.written.last_entry() {
            *last.get_mut() = (*last.get()).min(len);
        }
        state.high = state.high.min(len);
        drop(state);
        self.shared.wake.notify_all();
        Ok(())
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.shared.zeroed.load(Ordering::Acquire) {
            return self.inner.write(offset, data);
        }
        let mut state = self.shared.lock();
        let target = state.target();
        let zeroed = state.zeroed;
        if end > zeroed {
            state.record(offset.max(zeroed), end);
        }
        // Under the lock, so that no chunk of zeros lands on these bytes after them.
        let written = self.inner.write(offset, data);
        let wake = state.target() > target;
        drop(state);
        if wake {
            self.shared.wake.notify_all();
        }
        written
    }

    fn close(&self) -> std::io::Result<()> {
        self.stop();
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    use super::*;

    const PAGE: u64 = 4096;

    fn open(dir: &tempfile::TempDir, ahead: u64) -> (PrefilledFile, std::path::PathBuf) {
        let path = dir.path().join("db");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        (PrefilledFile::new(file, ahead).unwrap(), path)
    }

    /// Waits until the filler has reached its target; returns the frontier.
    fn settle(file: &PrefilledFile) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = file.shared.lock();
            if state.zeroed >= state.target() {
                return state.zeroed;
            }
            drop(state);
            assert!(Instant::now() < deadline, "the filler did not catch up");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn page(fill: u8) -> Vec<u8> {
        vec![fill; PAGE as usize]
    }

    fn read(file: &PrefilledFile, offset: u64) -> Vec<u8> {
        let mut out = vec![0; PAGE as usize];
        file.read(offset, &mut out).unwrap();
        out
    }

    fn allocated(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn records_should_merge_and_leave_gaps_between_them() {
        let mut state = State {
            len: 100,
            zeroed: 0,
            written: BTreeMap::new(),
            high: 0,
            ahead: 50,
            stop: false,
        };
        state.record(10, 20);
        state.record(20, 30);
        state.record(40, 45);
        state.record(44, 50);
        assert_eq!(
            state.written.iter().map(|(&s, &e)| (s, e)).collect::<Vec<_>>(),
            [(10, 30), (40, 50)]
        );
        assert_eq!(state.high, 50);
        assert_eq!(state.target(), 100);
        assert_eq!(state.gaps(0, 100), [(0, 10), (30, 40), (50, 100)]);
        assert_eq!(state.gaps(15, 42), [(30, 40)]);
        assert_eq!(state.gaps(12, 28), []);
        state.record(99, 100);
        assert_eq!(state.high, 100, "within reach of the highest write");
        state.advance(35);
        assert_eq!(state.written.keys().copied().collect::<Vec<_>>(), [40, 99]);

        let mut far = State { high: 10, len: 1000, ..state };
        far.record(500, 510);
        assert_eq!(far.high, 10, "a write far beyond does not move the target");
        assert_eq!(far.target(), 60);
    }

    #[test]
    fn the_filler_should_allocate_new_space_up_to_its_reach_and_keep_every_written_page() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = open(&dir, 4 << 20);
        file.set_len(16 << 20).unwrap();
        file.write(0, &page(1)).unwrap();
        file.write(1 << 20, &page(2)).unwrap();
        file.write(12 << 20, &page(3)).unwrap();
        let frontier = settle(&file);
        assert_eq!(frontier, (1 << 20) + PAGE + (4 << 20), "up to the reach past the last write");
        assert_eq!(read(&file, 0), page(1));
        assert_eq!(read(&file, 1 << 20), page(2));
        assert_eq!(read(&file, 12 << 20), page(3));
        assert_eq!(read(&file, 3 << 20), page(0));
        let used = allocated(&path);
        assert!(used >= frontier, "{used} bytes allocated below {frontier}");
        assert!(used < 8 << 20, "{used} bytes allocated: the filler went past its reach");

        // Writes below the frontier take the unlocked path and land as written.
        file.write(2 << 20, &page(4)).unwrap();
        assert_eq!(read(&file, 2 << 20), page(4));
        file.close().unwrap();
    }

    #[test]
    fn pages_written_while_the_file_grows_and_shrinks_should_never_be_zeroed() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = open(&dir, 1 << 20);
        let mut expected: HashMap<u64, u8> = HashMap::new();
        let mut len = 0u64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200u32 {
            if round == 120 {
                len /= 2;
                file.set_len(len).unwrap();
                expected.retain(|&offset, _| offset < len);
            }
            len += 64 * PAGE;
            file.set_len(len).unwrap();
            for _ in 0..16 {
                // Mostly near the end, as a growing database writes; some anywhere.
                let pages = len / PAGE;
                let at = if next() % 4 == 0 {
                    next() % pages
                } else {
                    pages - 1 - next() % pages.min(96)
                };
                let fill = (next() % 255 + 1) as u8;
                file.write(at * PAGE, &page(fill)).unwrap();
                expected.insert(at * PAGE, fill);
            }
        }
        settle(&file);
        for (&offset, &fill) in &expected {
            assert_eq!(read(&file, offset)[..], page(fill)[..], "page at {offset}");
        }
        let truncated = (len / 2 / PAGE) * PAGE;
        assert!(expected.keys().any(|&o| o >= truncated), "the pattern reaches the grown end");
        file.close().unwrap();
    }
}
