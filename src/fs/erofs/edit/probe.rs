//! The physical ranges a compressed file occupies, found by reading it.
//!
//! Compressed files locate their pclusters through lcluster indexes (full or
//! compact, 2- and 4-byte packs, big pclusters, inline tails, fragments,
//! partial references from deduplication). erofs-rs already decodes all of
//! them to read a file; reading the file once through a backend that notes
//! every byte range asked for yields exactly the pclusters the file uses,
//! with one decoder for reading and editing.

use std::io::{self, Read};
use std::ops::{Bound, Range, RangeBounds};
use std::sync::{Arc, Mutex};

use erofs_rs::EroFS;
use erofs_rs::backend::Image;

/// An image in memory that records the bounded ranges read from it.
pub struct Recorder<'a> {
    data: &'a [u8],
    /// The first block with the reader's DEFLATE window fix applied (see
    /// `reader::patch_deflate_window`), served for reads inside it.
    head: Vec<u8>,
    log: Arc<Mutex<Vec<Range<u64>>>>,
}

impl Image for Recorder<'_> {
    fn get<R: RangeBounds<u64>>(&self, range: R) -> Option<&[u8]> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.checked_add(1)?,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Some(e.checked_add(1)?),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        let slice = match end {
            Some(e) if e <= self.head.len() as u64 => self.head.get(start as usize..e as usize)?,
            Some(e) => self
                .data
                .get(usize::try_from(start).ok()?..usize::try_from(e).ok()?)?,
            None => self.data.get(usize::try_from(start).ok()?..)?,
        };
        // Unbounded reads are metadata parsing (superblock, inode headers);
        // data is always read as a bounded range.
        if let Some(e) = end
            && e > start
            && let Ok(mut log) = self.log.lock()
        {
            log.push(start..e);
        }
        Some(slice)
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Bytes of a file read between drops of the mapping pages its reads
/// touched: a large removed APK would otherwise stay resident whole.
const RELEASE_EVERY: u64 = 16 << 20;

/// Reads files of an image and reports the ranges each read touched.
pub struct Probe<'a> {
    fs: EroFS<Recorder<'a>>,
    data: &'a [u8],
    log: Arc<Mutex<Vec<Range<u64>>>>,
}

impl<'a> Probe<'a> {
    /// Opens the image held in `data`.
    pub fn new(data: &'a [u8]) -> Result<Self, erofs_rs::Error> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut head = data[..data.len().min(4096)].to_vec();
        crate::fs::erofs::reader::patch_deflate_window(&mut head);
        let rec = Recorder {
            data,
            head,
            log: log.clone(),
        };
        Ok(Probe {
            fs: EroFS::new(rec)?,
            data,
            log,
        })
    }

    /// Drops the pages of the image, when it is a registered file mapping
    /// (see `util::pages`; the image is only read, so a later read maps the
    /// same bytes again). Not only the ranges logged: the decoders also read
    /// with unbounded ranges, which the log leaves out.
    fn release(&self) {
        crate::util::pages::release_if_mapped(self.data);
    }

    /// Reads inode `nid` (of `size` bytes, at most `limit`) to its end and
    /// returns every byte range that took, in order.
    pub fn ranges(&self, nid: u64, size: u64, limit: u64) -> Result<Vec<Range<u64>>, String> {
        if size > limit {
            return Err(format!("claims {size} bytes, impossible in this image"));
        }
        if let Ok(mut log) = self.log.lock() {
            log.clear();
        }
        let inode = self.fs.get_inode(nid).map_err(|e| e.to_string())?;
        let mut f = self.fs.open_inode_file(inode).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    if total > size {
                        return Err(format!("yields more than its {size} bytes"));
                    }
                    if total % RELEASE_EVERY < n as u64 {
                        self.release();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        self.release();
        if total != size {
            return Err(format!("yields {total} bytes, expected {size}"));
        }
        let log = self
            .log
            .lock()
            .map_err(|_| "probe log poisoned".to_string())?;
        Ok(log.clone())
    }
}
