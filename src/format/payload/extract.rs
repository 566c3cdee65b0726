//! Parallel application of a full payload's operations.
//!
//! Work is one operation at a time, across all selected partitions, pulled in
//! order from one shared counter by `jobs` rayon workers: every core stays busy
//! until the last operation, with no per-partition barrier.
//!
//! Each partition's SHA-256 must be computed over its bytes in order, while
//! operations finish out of order. Finished outputs wait in a small per-partition
//! buffer until every byte before them is hashed; whichever worker completes
//! the missing piece hashes everything that became contiguous. The buffer is
//! bounded: a worker about to start an operation far ahead of the hashing
//! position waits while the buffer is full. This never deadlocks, because the
//! operation the hasher needs is always either already taken (and will finish)
//! or the next one to take (and is never made to wait).
//!
//! With verification off, outputs are written and dropped at once.
//!
//! Incremental operations read their source ranges from the old partition
//! image given per partition in [`Job::sources`] (see [`super::delta`]); the
//! caller runs [`super::delta::check_sources`] first.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::decode::decode_into;
use super::delta;
use super::verity::{ImageHasher, VerityBytes};
use super::{OpType, Operation, Partition, Payload, PayloadError};
use crate::format::input_pages::InputPages;
use crate::format::source::FileSlice;
use crate::util::hex;

/// Bytes of finished-but-unhashed output a partition may hold before workers
/// that are ahead of the hashing position wait.
pub const REORDER_LIMIT: u64 = 48 << 20;

/// Alignment of buffers and offsets for direct I/O.
const DIRECT_ALIGN: usize = 4096;

/// An image being written: a buffered handle and, where the filesystem allows
/// it, a second handle opened with `O_DIRECT`.
///
/// Extraction writes each byte once and never reads it back, so pushing it
/// through the page cache only costs CPU time (page allocation and copying,
/// then writeback); direct writes go from the decode buffer to the disk.
/// Writes that cannot be direct (unaligned, or refused by the filesystem, as
/// tmpfs does) go through the buffered handle.
#[derive(Debug)]
pub struct OutputFile {
    buffered: File,
    direct: Option<File>,
    path: PathBuf,
}

impl OutputFile {
    /// Wraps an open file; with `direct`, tries to open `path` a second time
    /// for direct I/O unless `ROMKIT_NO_DIRECT_IO` is set. An image that is
    /// read back soon (as `build` reads what it decodes) is better written
    /// through the page cache: direct writes would leave every later read to
    /// the disk.
    pub fn new(buffered: File, path: PathBuf, direct: bool) -> Self {
        let direct = if !direct || std::env::var_os("ROMKIT_NO_DIRECT_IO").is_some() {
            None
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .ok()
        };
        OutputFile {
            buffered,
            direct,
            path,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if let Some(d) = &self.direct
            && (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && buf.len().is_multiple_of(DIRECT_ALIGN)
            && offset.is_multiple_of(DIRECT_ALIGN as u64)
        {
            match d.write_all_at(buf, offset) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        self.buffered.write_all_at(buf, offset)
    }
}

/// Recycled decode buffers: allocating a fresh 2 MiB buffer per operation
/// costs a page fault per 4 KiB in the kernel, more than the copy it holds.
struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
    cap: usize,
}

impl BufPool {
    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, v: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.cap {
            free.push(v);
        }
    }
}

/// A decode buffer whose usable part starts at a [`DIRECT_ALIGN`] boundary;
/// its memory goes back to the pool when dropped.
struct OpBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl Drop for OpBuf {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give(std::mem::take(&mut self.bytes));
        }
    }
}

impl OpBuf {
    fn pooled(pool: &Arc<BufPool>) -> Self {
        OpBuf {
            bytes: pool.take(),
            start: 0,
            len: 0,
            pool: Some(pool.clone()),
        }
    }

    /// Makes room for `len` bytes (contents unspecified until written).
    fn reset(&mut self, len: usize) {
        if self.bytes.len() < len + DIRECT_ALIGN {
            self.bytes = vec![0u8; len + DIRECT_ALIGN];
        }
        self.start = self.bytes.as_ptr().align_offset(DIRECT_ALIGN);
        self.len = len;
    }

    fn get(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// Callbacks for progress display. Called from worker threads.
pub trait Progress: Sync {
    /// `bytes` more destination bytes of selected partition `part` are done.
    fn advance(&self, part: usize, bytes: u64);
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {
    fn advance(&self, _: usize, _: u64) {}
}

/// What to do with the decoded operations.
pub struct Job<'a> {
    /// The payload.
    pub payload: &'a Payload,
    /// Indices into `payload.partitions` to process.
    pub partitions: Vec<usize>,
    /// One preallocated output file per selected partition, or `None` to only verify.
    pub outputs: Option<Vec<OutputFile>>,
    /// Check `data_sha256_hash` of every operation and the partition hashes.
    pub verify: bool,
    /// Stop at the first failure (unpack) or record failures and go on (verify).
    pub fail_fast: bool,
    /// Worker count.
    pub jobs: usize,
    /// The old partition image of each selected partition, for incremental
    /// operations (empty, or one entry per selected partition).
    pub sources: Vec<Option<FileSlice>>,
    /// The input file's pages, told of each operation's data once it is
    /// read (the payload's file is the one they track), and given by the
    /// writer thread as it writes.
    pub pages: Option<&'a InputPages>,
}

/// Outcome for one partition.
#[derive(Clone, Debug)]
pub struct PartitionOutcome {
    /// Partition name.
    pub name: String,
    /// Image size.
    pub size: u64,
    /// Operations whose data hash was checked and matched.
    pub ops_verified: usize,
    /// Data-carrying operations without a `data_sha256_hash`.
    pub ops_unhashed: usize,
    /// Operations that failed (hash mismatch or undecodable data).
    pub ops_failed: usize,
    /// Hash in the manifest.
    pub expected_hash: Option<[u8; 32]>,
    /// Hash of the produced image (when verifying and every operation succeeded).
    pub actual_hash: Option<[u8; 32]>,
}

impl PartitionOutcome {
    /// Whether the partition image is known good: every operation decoded and
    /// the image hash, when the manifest has one, matched.
    pub fn ok(&self) -> bool {
        self.ops_failed == 0
            && match (self.expected_hash, self.actual_hash) {
                (Some(e), Some(a)) => e == a,
                // Expected a hash but none was computed: not verified.
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// Outcome of a job.
#[derive(Debug)]
pub struct Outcome {
    /// Per selected partition, in selection order.
    pub partitions: Vec<PartitionOutcome>,
    /// Every failure found (only the first when failing fast). The caller
    /// names the payload file when reporting them.
    pub failures: Vec<PayloadError>,
}

/// A contiguous piece of a partition image, in image order.
#[derive(Clone, Copy, Debug)]
enum Seg {
    /// Bytes no data operation writes: zeros.
    Zero { len: u64 },
    /// `len` bytes of the output of the data operation at position `pos` of
    /// the partition's work order, starting `within` bytes into that output.
    Op { pos: usize, within: u64, len: u64 },
}

/// The static plan of one partition.
struct PartPlan<'a> {
    part: &'a Partition,
    /// Indices into `part.ops` of data-carrying operations, sorted by first destination byte.
    order: Vec<usize>,
    /// The image as segments, in byte order.
    segs: Vec<Seg>,
    /// Number of segments each position in `order` contributes.
    seg_count: Vec<usize>,
}

impl<'a> PartPlan<'a> {
    fn new(part: &'a Partition) -> Self {
        let mut order: Vec<usize> = part
            .ops
            .iter()
            .enumerate()
            .filter(|(_, o)| !matches!(o.kind, Ok(OpType::Zero) | Ok(OpType::Discard)))
            .map(|(i, _)| i)
            .collect();
        order.sort_by_key(|&i| (part.ops[i].dst.first().map_or(0, |r| r.offset), i));
        // (offset, len, pos, within) for every destination range; validation has
        // already proven they do not overlap.
        let mut pieces = Vec::new();
        let mut seg_count = vec![0usize; order.len()];
        for (pos, &oi) in order.iter().enumerate() {
            let mut within = 0;
            for r in &part.ops[oi].dst {
                pieces.push((r.offset, r.len, pos, within));
                within += r.len;
                seg_count[pos] += 1;
            }
        }
        pieces.sort_unstable_by_key(|p| p.0);
        let mut segs = Vec::with_capacity(pieces.len() * 2 + 1);
        let mut at = 0u64;
        for (offset, len, pos, within) in pieces {
            if offset > at {
                segs.push(Seg::Zero { len: offset - at });
            }
            segs.push(Seg::Op { pos, within, len });
            at = offset + len;
        }
        if part.size > at {
            segs.push(Seg::Zero {
                len: part.size - at,
            });
        }
        PartPlan {
            part,
            order,
            segs,
            seg_count,
        }
    }
}

/// Mutable per-partition state for in-order hashing.
struct HashInner {
    /// Finished outputs not fully hashed yet: position -> (bytes, segments
    /// left). `None` stands for zeros: the output of an operation that failed.
    ready: HashMap<usize, (Option<Arc<OpBuf>>, usize)>,
    /// Next segment to hash.
    seg_pos: usize,
    hasher: Option<ImageHasher>,
    /// The tree and parity computed while hashing, to write into the image.
    verity: Option<VerityBytes>,
    /// Whether some worker is hashing right now.
    hashing: bool,
    buffered: u64,
    result: Option<[u8; 32]>,
    /// Whether this job hashes at all.
    enabled: bool,
}

struct PartState {
    inner: Mutex<HashInner>,
    cond: Condvar,
    ops_verified: AtomicUsize,
    ops_unhashed: AtomicUsize,
    ops_failed: AtomicUsize,
}

enum Piece {
    Zero(u64),
    Data(Arc<OpBuf>, u64, u64),
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl PartState {
    /// State for a partition that is hashed when verifying, and always when
    /// the device computes a hash tree or FEC: they come from the stream.
    fn new(verify: bool, part: &Partition) -> Self {
        let hashing = verify || part.verity.is_some();
        PartState {
            inner: Mutex::new(HashInner {
                ready: HashMap::new(),
                seg_pos: 0,
                hasher: hashing.then(|| ImageHasher::new(part.verity.as_ref())),
                verity: None,
                hashing: false,
                buffered: 0,
                result: None,
                enabled: hashing,
            }),
            cond: Condvar::new(),
            ops_verified: AtomicUsize::new(0),
            ops_unhashed: AtomicUsize::new(0),
            ops_failed: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashInner> {
        // A worker that panicked while holding the lock is a bug that rayon
        // re-raises anyway; the state itself stays consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks while the reorder buffer is full and `pos` is ahead of the
    /// operation the hasher needs.
    fn wait_for_room(&self, plan: &PartPlan, pos: usize, cancel: &AtomicBool) {
        let mut g = self.lock();
        loop {
            if cancel.load(Ordering::Relaxed) || g.buffered <= REORDER_LIMIT {
                return;
            }
            let needed = plan.segs[g.seg_pos..].iter().find_map(|s| match s {
                Seg::Op { pos, .. } => Some(*pos),
                Seg::Zero { .. } => None,
            });
            if needed.is_none_or(|n| pos <= n) {
                return;
            }
            g = self
                .cond
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Hands over a finished output (or `None` for a partition without data
    /// operations) and hashes whatever became contiguous. An output of `None`
    /// hashes as zeros of the operation's size without allocating them: a
    /// failed operation may claim a terabyte.
    fn submit(&self, plan: &PartPlan, item: Option<(usize, Option<Arc<OpBuf>>)>) {
        let mut g = self.lock();
        if !g.enabled || g.result.is_some() {
            return;
        }
        if let Some((pos, buf)) = item {
            g.buffered += buf.as_ref().map_or(0, |b| b.len as u64);
            g.ready.insert(pos, (buf, plan.seg_count[pos]));
        }
        if g.hashing {
            return;
        }
        g.hashing = true;
        loop {
            let mut batch = Vec::new();
            let mut sp = g.seg_pos;
            while sp < plan.segs.len() && batch.len() < 64 {
                match plan.segs[sp] {
                    Seg::Zero { len } => batch.push(Piece::Zero(len)),
                    Seg::Op { pos, within, len } => match g.ready.get(&pos) {
                        Some((Some(b), _)) => batch.push(Piece::Data(b.clone(), within, len)),
                        Some((None, _)) => batch.push(Piece::Zero(len)),
                        None => break,
                    },
                }
                sp += 1;
            }
            if batch.is_empty() {
                g.hashing = false;
                return;
            }
            let mut hasher = g.hasher.take().expect("hasher present while hashing");
            drop(g);
            for piece in &batch {
                match piece {
                    Piece::Zero(len) => {
                        let mut len = *len;
                        while len > 0 {
                            let n = len.min(ZEROS.len() as u64);
                            hasher.update(&ZEROS[..n as usize]);
                            len -= n;
                        }
                    }
                    Piece::Data(b, within, len) => {
                        hasher.update(&b.get()[*within as usize..(*within + *len) as usize]);
                    }
                }
            }
            drop(batch);
            g = self.lock();
            for seg in &plan.segs[g.seg_pos..sp] {
                if let Seg::Op { pos, .. } = seg {
                    let left = {
                        let e = g.ready.get_mut(pos).expect("hashed output present");
                        e.1 -= 1;
                        e.1
                    };
                    if left == 0
                        && let Some((b, _)) = g.ready.remove(pos)
                    {
                        g.buffered -= b.map_or(0, |b| b.len as u64);
                    }
                }
            }
            g.seg_pos = sp;
            self.cond.notify_all();
            if sp == plan.segs.len() {
                let (hash, verity) = hasher.finish();
                g.result = Some(hash);
                g.verity = Some(verity);
                g.hasher = None;
                g.hashing = false;
                return;
            }
            g.hasher = Some(hasher);
        }
    }
}

/// One unit of work.
#[derive(Clone, Copy)]
enum Work {
    /// Decode the operation at position `pos` of selected partition `part`.
    Op { part: usize, pos: usize },
    /// Hash a partition that has no data operations.
    HashOnly { part: usize },
}

/// Decodes partition `index` of `payload` with every hash checked and
/// nothing written; true when it decoded clean.
#[cfg(test)]
pub(crate) fn check_partition(payload: &Payload, index: usize) -> bool {
    let outcome = run(
        &Job {
            payload,
            partitions: vec![index],
            outputs: None,
            verify: true,
            fail_fast: true,
            sources: Vec::new(),
            pages: None,
            jobs: 2,
        },
        &NoProgress,
    );
    outcome.failures.is_empty() && outcome.partitions[0].ok()
}

/// Runs a job. Returns per-partition outcomes and the failures found; the
/// caller decides what failures mean (exit code, removing outputs).
pub fn run(job: &Job<'_>, progress: &dyn Progress) -> Outcome {
    let plans: Vec<PartPlan> = job
        .partitions
        .iter()
        .map(|&i| PartPlan::new(&job.payload.partitions[i]))
        .collect();
    let states: Vec<PartState> = plans
        .iter()
        .map(|p| PartState::new(job.verify, p.part))
        .collect();
    let work = work_list(&plans, progress);
    let shared = Shared {
        job,
        progress,
        plans,
        states,
        work,
        next: AtomicUsize::new(0),
        cancel: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        bufs: Arc::new(BufPool {
            free: Mutex::new(Vec::new()),
            cap: job.jobs.max(1) * 4 + (REORDER_LIMIT >> 21) as usize,
        }),
    };
    shared.execute();
    shared.write_verity();
    shared.outcome()
}

/// Every unit of work, partition by partition in operation order (the order
/// the shared counter hands them out). Reports zero-only ranges as done.
fn work_list(plans: &[PartPlan], progress: &dyn Progress) -> Vec<Work> {
    let mut work = Vec::new();
    for (pi, plan) in plans.iter().enumerate() {
        if plan.order.is_empty() {
            work.push(Work::HashOnly { part: pi });
        }
        for pos in 0..plan.order.len() {
            work.push(Work::Op { part: pi, pos });
        }
        // Zero-only ranges count as done from the start.
        let zero_bytes = plan.part.size
            - plan
                .order
                .iter()
                .map(|&i| plan.part.ops[i].dst_len)
                .sum::<u64>();
        progress.advance(pi, zero_bytes);
    }
    work
}

/// A decoded output on its way to the writer thread: selected partition,
/// index into its operations, bytes.
type WriteItem = (usize, usize, Arc<OpBuf>);
type WriteTx = std::sync::mpsc::SyncSender<WriteItem>;

/// A worker's reusable buffers: an operation's data, and its source ranges
/// for incremental operations.
#[derive(Default)]
struct Scratch {
    data: Vec<u8>,
    src: Vec<u8>,
}

/// What the workers and the writer thread of one [`run`] share.
struct Shared<'a> {
    job: &'a Job<'a>,
    progress: &'a dyn Progress,
    plans: Vec<PartPlan<'a>>,
    states: Vec<PartState>,
    work: Vec<Work>,
    /// Position in `work` of the next unit to take.
    next: AtomicUsize,
    /// Set on the first failure when failing fast: everyone stops taking work.
    cancel: AtomicBool,
    failures: Mutex<Vec<PayloadError>>,
    bufs: Arc<BufPool>,
}

impl Shared<'_> {
    /// Records a failure: only the first when failing fast (and cancels the
    /// rest), at most 1000 otherwise.
    fn fail(&self, e: PayloadError) {
        if self.job.fail_fast {
            self.cancel.store(true, Ordering::Relaxed);
        }
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if (f.is_empty() || !self.job.fail_fast) && f.len() < 1000 {
            f.push(e);
        }
    }

    /// Runs the workers, and the writer thread when there are outputs, until
    /// the work is done or cancelled.
    fn execute(&self) {
        // Writes happen on one thread of their own, fed through a bounded
        // queue, so that decoding never waits for the disk.
        let (write_tx, write_rx) = match &self.job.outputs {
            Some(_) => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<WriteItem>(self.job.jobs.max(1) * 2);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let jobs = self.job.jobs.max(1);
        std::thread::scope(|s| {
            let writer_thread = write_rx.map(|rx| s.spawn(|| self.writer(rx)));
            match rayon::ThreadPoolBuilder::new().num_threads(jobs).build() {
                Ok(pool) => {
                    pool.broadcast(|_| self.worker(write_tx.as_ref()));
                }
                Err(_) => self.worker(write_tx.as_ref()),
            }
            drop(write_tx);
            if let Some(t) = writer_thread
                && t.join().is_err()
            {
                self.fail(PayloadError::Io {
                    path: self.job.payload.source.path().to_path_buf(),
                    offset: None,
                    source: std::io::Error::other("image writer thread panicked"),
                });
            }
        });
    }

    /// The writer thread: writes each output to its destination ranges;
    /// the first write error fails the job and cancels everything.
    fn writer(&self, rx: std::sync::mpsc::Receiver<WriteItem>) {
        let Some(outputs) = &self.job.outputs else {
            return;
        };
        for (pi, oi, buf) in rx {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let f = &outputs[pi];
            if let Some(pages) = self.job.pages {
                // Dropped here, on the writing thread, for its writes to
                // take (see `InputPages`).
                pages.give(buf.get().len() as u64);
            }
            let mut at = 0usize;
            for r in &self.plans[pi].part.ops[oi].dst {
                if let Err(e) = f.write_at(&buf.get()[at..at + r.len as usize], r.offset) {
                    self.states[pi].ops_failed.fetch_add(1, Ordering::Relaxed);
                    self.fail(PayloadError::Io {
                        path: f.path().to_path_buf(),
                        offset: Some(r.offset),
                        source: e,
                    });
                    self.cancel.store(true, Ordering::Relaxed);
                    return;
                }
                at += r.len as usize;
            }
        }
    }

    /// One worker: takes units of work in order until none is left or the
    /// job is cancelled.
    fn worker(&self, write_tx: Option<&WriteTx>) {
        let mut scratch = Scratch::default();
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let w = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&item) = self.work.get(w) else {
                return;
            };
            match item {
                Work::HashOnly { part } => self.states[part].submit(&self.plans[part], None),
                Work::Op { part, pos } => self.do_op(part, pos, write_tx, &mut scratch),
            }
        }
    }

    /// Decodes the operation at `pos` of partition `pi`, then hands its
    /// output to the writer and the hasher, or records why it failed.
    fn do_op(&self, pi: usize, pos: usize, write_tx: Option<&WriteTx>, scratch: &mut Scratch) {
        let plan = &self.plans[pi];
        let state = &self.states[pi];
        let op = &plan.part.ops[plan.order[pos]];
        if self.job.verify {
            state.wait_for_room(plan, pos, &self.cancel);
        }
        match self.decode(pi, op, scratch) {
            Ok(out) => {
                self.progress.advance(pi, op.dst_len);
                let out = Arc::new(out);
                if let Some(tx) = write_tx {
                    // The writer thread owns the disk; a closed channel
                    // means it failed and has already recorded why.
                    let _ = tx.send((pi, plan.order[pos], out.clone()));
                }
                if self.job.verify {
                    state.submit(plan, Some((pos, Some(out))));
                }
            }
            Err(e) => {
                state.ops_failed.fetch_add(1, Ordering::Relaxed);
                self.fail(e);
                if self.job.verify && !self.job.fail_fast {
                    // Keep the partition's hashing moving; its result is
                    // discarded because an operation failed.
                    state.submit(plan, Some((pos, None)));
                }
            }
        }
    }

    /// Reads `op`'s data, checks its hash when verifying, and decodes it
    /// (against the old image for incremental operations).
    fn decode(
        &self,
        pi: usize,
        op: &Operation,
        scratch: &mut Scratch,
    ) -> Result<OpBuf, PayloadError> {
        let part = self.plans[pi].part;
        let source = self.job.sources.get(pi).and_then(|s| s.as_ref());
        let kind = match op.kind {
            Ok(k) if !k.needs_source() || source.is_some() => k,
            _ => {
                return Err(PayloadError::Incremental {
                    partition: part.name.clone(),
                    index: op.index,
                    kind: op.kind_name(),
                });
            }
        };
        let data = &mut scratch.data;
        data.resize(op.data_len as usize, 0);
        self.job
            .payload
            .source
            .read_exact_at(data, op.data_offset)
            .map_err(|e| PayloadError::Read {
                offset: op.data_offset,
                source: e,
            })?;
        if let Some(pages) = self.job.pages {
            let at = self
                .job
                .payload
                .source
                .base()
                .saturating_add(op.data_offset);
            pages.read(at..at.saturating_add(op.data_len));
        }
        if self.job.verify {
            check_data_hash(&self.states[pi], part, op, data)?;
        }
        // Only checked bytes are recorded: the output's check trusts them.
        let crcs = &self.job.payload.blob_crcs;
        if op.data_len > 0 && self.job.verify && crcs.wanted() {
            crcs.record(op.data_offset, op.data_len, crc32fast::hash(data));
        }
        let mut out = OpBuf::pooled(&self.bufs);
        match source {
            Some(src) if kind.needs_source() => {
                delta::read_source(part, op, src, &mut scratch.src)?;
                out.reset(op.dst_len as usize);
                delta::apply(part, op, kind, data, &scratch.src, out.get_mut())?;
            }
            _ => {
                out.reset(op.dst_len as usize);
                decode_into(kind, data, out.get_mut()).map_err(|why| PayloadError::Decode {
                    partition: part.name.clone(),
                    index: op.index,
                    kind: op.kind_name(),
                    why,
                })?;
            }
        }
        Ok(out)
    }

    /// Writes the hash trees and FEC parity computed while hashing into the
    /// images, as update_engine's verity writer does after the operations.
    fn write_verity(&self) {
        let Some(outputs) = &self.job.outputs else {
            return;
        };
        for (pi, state) in self.states.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let Some(v) = state.lock().verity.take() else {
                continue;
            };
            for (at, bytes) in v.tree.iter().chain(&v.fec) {
                if let Err(e) = outputs[pi].buffered.write_all_at(bytes, *at) {
                    self.fail(PayloadError::Io {
                        path: outputs[pi].path().to_path_buf(),
                        offset: Some(*at),
                        source: e,
                    });
                    return;
                }
            }
        }
    }

    /// Per-partition outcomes once the work is done; a partition hash that
    /// does not match is a failure too (unless the job was cancelled).
    fn outcome(self) -> Outcome {
        let mut outcomes = Vec::with_capacity(self.plans.len());
        for (plan, state) in self.plans.iter().zip(&self.states) {
            let result = state.lock().result;
            let o = PartitionOutcome {
                name: plan.part.name.clone(),
                size: plan.part.size,
                ops_verified: state.ops_verified.load(Ordering::Relaxed),
                ops_unhashed: state.ops_unhashed.load(Ordering::Relaxed),
                ops_failed: state.ops_failed.load(Ordering::Relaxed),
                expected_hash: plan.part.hash,
                actual_hash: if state.ops_failed.load(Ordering::Relaxed) == 0 {
                    result
                } else {
                    None
                },
            };
            if self.job.verify
                && !self.cancel.load(Ordering::Relaxed)
                && let (Some(e), Some(a)) = (o.expected_hash, o.actual_hash)
                && e != a
            {
                self.fail(PayloadError::PartitionHash {
                    partition: o.name.clone(),
                    expected: hex(&e),
                    actual: hex(&a),
                });
            }
            outcomes.push(o);
        }
        Outcome {
            partitions: outcomes,
            failures: self
                .failures
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Checks an operation's data against its `data_sha256_hash` and counts it
/// as verified, or as unhashed when it carries data but no hash.
fn check_data_hash(
    state: &PartState,
    part: &Partition,
    op: &Operation,
    data: &[u8],
) -> Result<(), PayloadError> {
    match op.data_hash {
        Some(expected) => {
            let actual: [u8; 32] = Sha256::digest(data).into();
            if actual != expected {
                return Err(PayloadError::OpHash {
                    partition: part.name.clone(),
                    index: op.index,
                    kind: op.kind_name(),
                    offset: op.data_offset,
                    len: op.data_len,
                    expected: hex(&expected),
                    actual: hex(&actual),
                });
            }
            state.ops_verified.fetch_add(1, Ordering::Relaxed);
        }
        None if op.data_len > 0 => {
            state.ops_unhashed.fetch_add(1, Ordering::Relaxed);
        }
        None => {}
    }
    Ok(())
}
