//! Progress bars on stderr (only when it is a terminal and not `--quiet`).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::format::payload::extract::Progress;

/// One bar for the total and one per partition.
pub struct Bars {
    _multi: MultiProgress,
    total: ProgressBar,
    parts: Vec<ProgressBar>,
}

impl Bars {
    /// Bars for partitions of the given names and sizes; hidden when `show` is false.
    pub fn new(show: bool, parts: &[(String, u64)]) -> Self {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total_bytes = parts.iter().map(|p| p.1).sum();
        let style = ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let total = multi.add(ProgressBar::new(total_bytes).with_style(style.clone()));
        total.set_prefix("total");
        let parts = parts
            .iter()
            .map(|(name, size)| {
                let b = multi.add(ProgressBar::new(*size).with_style(style.clone()));
                b.set_prefix(name.clone());
                b
            })
            .collect();
        Bars {
            _multi: multi,
            total,
            parts,
        }
    }

    /// Marks every bar finished.
    pub fn finish(&self) {
        for b in &self.parts {
            b.finish();
        }
        self.total.finish();
    }
}

impl Progress for Bars {
    fn advance(&self, part: usize, bytes: u64) {
        self.total.inc(bytes);
        if let Some(b) = self.parts.get(part) {
            b.inc(bytes);
            if b.position() >= b.length().unwrap_or(0) {
                b.finish();
            }
        }
    }
}
