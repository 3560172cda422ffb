//! Counting windows aligned to wall-clock time, so every instance names the same buckets.
//!
//! A bucket ([`Cell`]) holds this instance's count (`mine`) and the other instances' count as
//! last read from the store (`others`). [`Sliding`] approximates a one-minute sliding window
//! from two epoch-aligned minute buckets (Cloudflare's estimator:
//! `previous × (1 − elapsed/60 s) + current`); [`Fixed`] is one calendar bucket (a day or a
//! month). All times are Unix milliseconds passed in by the caller, so tests inject them.

/// Length of the rate window.
pub const WINDOW_MS: i64 = 60_000;

/// The rate bucket a time falls in.
pub fn minute_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(WINDOW_MS)
}

/// Round a computed wait up to whole milliseconds, ignoring float noise (20000.000000004).
fn ceil_ms(ms: f64) -> i64 {
    (ms - 1e-6).ceil() as i64
}

/// One bucket's count, split by who counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Which bucket this is (minute number, or a calendar day/month id).
    pub id: i64,
    pub mine: i64,
    pub others: i64,
}

impl Cell {
    pub fn total(&self) -> i64 {
        self.mine.saturating_add(self.others).max(0)
    }
}

/// The sliding one-minute window of one counter.
#[derive(Debug, Clone, Default)]
pub struct Sliding {
    /// Indexed by bucket id modulo 2: the current and the previous minute.
    cells: [Cell; 2],
}

impl Sliding {
    fn slot(id: i64) -> usize {
        id.rem_euclid(2) as usize
    }

    /// The cell for bucket `id`, reset if it still holds an older bucket.
    pub fn cell_mut(&mut self, id: i64) -> &mut Cell {
        let cell = &mut self.cells[Self::slot(id)];
        if cell.id != id {
            *cell = Cell {
                id,
                ..Cell::default()
            };
        }
        cell
    }

    /// The cell for bucket `id` if it is still held.
    pub fn cell(&self, id: i64) -> Option<&Cell> {
        let c = &self.cells[Self::slot(id)];
        (c.id == id).then_some(c)
    }

    fn total(&self, id: i64) -> i64 {
        self.cell(id).map_or(0, Cell::total)
    }

    /// The estimated count over the last minute.
    pub fn count(&self, now_ms: i64) -> f64 {
        let id = minute_of(now_ms);
        let frac = now_ms.rem_euclid(WINDOW_MS) as f64 / WINDOW_MS as f64;
        self.total(id - 1) as f64 * (1.0 - frac) + self.total(id) as f64
    }

    /// Whether `need` more fits under `limit` now.
    pub fn fits(&self, now_ms: i64, limit: u64, need: u64) -> bool {
        self.count(now_ms) + need as f64 <= limit as f64
    }

    /// Count `n` in the current bucket; returns the bucket id (to settle against later).
    pub fn add(&mut self, now_ms: i64, n: i64) -> i64 {
        let id = minute_of(now_ms);
        let cell = self.cell_mut(id);
        cell.mine = cell.mine.saturating_add(n);
        id
    }

    /// Correct an earlier count in bucket `id`, if that bucket is still held.
    pub fn adjust(&mut self, id: i64, delta: i64) {
        let slot = Self::slot(id);
        if self.cells[slot].id == id {
            self.cells[slot].mine = self.cells[slot].mine.saturating_add(delta);
        }
    }

    /// Milliseconds until `need` more would fit under `limit`, or `None` if it never can.
    pub fn wait_ms(&self, now_ms: i64, limit: u64, need: u64) -> Option<i64> {
        if need > limit {
            return None;
        }
        let id = minute_of(now_ms);
        let elapsed = now_ms.rem_euclid(WINDOW_MS);
        let (prev, curr) = (self.total(id - 1) as f64, self.total(id) as f64);
        let room = limit as f64 - need as f64 - curr;
        if room >= 0.0 {
            // Wait for enough of the previous bucket to slide out.
            if prev <= room {
                return Some(0);
            }
            let frac_needed = 1.0 - room / prev;
            let at = ceil_ms(frac_needed * WINDOW_MS as f64);
            return Some((at - elapsed).max(0));
        }
        // The current bucket alone is too full: it becomes the previous one next minute.
        let room_next = limit as f64 - need as f64;
        let frac_needed = if curr > 0.0 {
            (1.0 - room_next / curr).max(0.0)
        } else {
            0.0
        };
        Some(WINDOW_MS - elapsed + ceil_ms(frac_needed * WINDOW_MS as f64))
    }

    /// Milliseconds until the window is empty again (OpenAI's `x-ratelimit-reset-*`).
    pub fn reset_ms(&self, now_ms: i64) -> i64 {
        let id = minute_of(now_ms);
        let left = WINDOW_MS - now_ms.rem_euclid(WINDOW_MS);
        if self.total(id) > 0 {
            left + WINDOW_MS
        } else if self.total(id - 1) > 0 {
            left
        } else {
            0
        }
    }

    /// Record the other instances' count of bucket `id`.
    pub fn set_others(&mut self, id: i64, others: i64) {
        let slot = Self::slot(id);
        if self.cells[slot].id == id {
            self.cells[slot].others = others;
        } else if self.cells[slot].id < id {
            self.cells[slot] = Cell {
                id,
                mine: 0,
                others,
            };
        }
    }
}

/// A calendar window: one bucket, replaced when the day or month changes.
#[derive(Debug, Clone, Default)]
pub struct Fixed {
    pub cell: Cell,
}

impl Fixed {
    /// The total counted in bucket `id` (0 once the bucket has passed).
    pub fn used(&self, id: i64) -> i64 {
        if self.cell.id == id {
            self.cell.total()
        } else {
            0
        }
    }

    pub fn add(&mut self, id: i64, n: i64) {
        if self.cell.id != id {
            self.cell = Cell {
                id,
                ..Cell::default()
            };
        }
        self.cell.mine = self.cell.mine.saturating_add(n);
    }

    pub fn adjust(&mut self, id: i64, delta: i64) {
        if self.cell.id == id {
            self.cell.mine = self.cell.mine.saturating_add(delta);
        }
    }

    pub fn set_others(&mut self, id: i64, others: i64) {
        if self.cell.id == id {
            self.cell.others = others;
        } else if self.cell.id < id {
            self.cell = Cell {
                id,
                mine: 0,
                others,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_040_000; // a minute boundary

    #[test]
    fn count_weights_the_previous_minute_by_what_is_left_of_it() {
        assert_eq!(T0 % WINDOW_MS, 0);
        let mut w = Sliding::default();
        w.add(T0 + 1_000, 30);
        assert_eq!(w.count(T0 + 59_000), 30.0);
        // 15 s into the next minute, three quarters of the previous one still count.
        w.add(T0 + WINDOW_MS + 15_000, 10);
        assert_eq!(w.count(T0 + WINDOW_MS + 15_000), 30.0 * 0.75 + 10.0);
        // Two minutes on, nothing is left.
        assert_eq!(w.count(T0 + 3 * WINDOW_MS), 0.0);
    }

    #[test]
    fn fits_is_exact_at_the_limit() {
        let mut w = Sliding::default();
        for _ in 0..5 {
            assert!(w.fits(T0, 5, 1));
            w.add(T0, 1);
        }
        assert!(!w.fits(T0, 5, 1));
        assert!(w.fits(T0, 5, 0));
    }

    #[test]
    fn wait_is_how_long_until_the_request_fits() {
        let mut w = Sliding::default();
        w.add(T0 + 10_000, 10);
        // Current bucket full: wait for the next minute, then until enough has slid out.
        let now = T0 + 30_000;
        let wait = w.wait_ms(now, 10, 1).unwrap();
        assert_eq!(wait, 30_000 + 6_000);
        assert!(!w.fits(now + wait - 1_000, 10, 1));
        assert!(w.fits(now + wait, 10, 1));
        // Larger than the whole window: never.
        assert_eq!(w.wait_ms(now, 10, 11), None);
        // Room right now.
        assert_eq!(w.wait_ms(now, 20, 5), Some(0));
    }

    #[test]
    fn wait_when_only_the_previous_minute_is_in_the_way() {
        let mut w = Sliding::default();
        w.add(T0, 8);
        let now = T0 + WINDOW_MS + 6_000; // previous counts 8 × 0.9 = 7.2
        assert!(!w.fits(now, 8, 1));
        let wait = w.wait_ms(now, 8, 1).unwrap();
        assert!(w.fits(now + wait, 8, 1));
        assert!(!w.fits(now + wait - 100, 8, 1));
    }

    #[test]
    fn adjust_corrects_only_a_held_bucket() {
        let mut w = Sliding::default();
        let id = w.add(T0, 100);
        w.adjust(id, -60);
        assert_eq!(w.count(T0), 40.0);
        w.add(T0 + 2 * WINDOW_MS, 1); // evicts bucket `id` (same slot)
        w.adjust(id, -40);
        assert_eq!(w.count(T0 + 2 * WINDOW_MS), 1.0);
    }

    #[test]
    fn others_count_and_never_go_negative() {
        let mut w = Sliding::default();
        let id = w.add(T0, 3);
        w.set_others(id, 4);
        assert_eq!(w.count(T0), 7.0);
        w.adjust(id, -10);
        assert_eq!(w.count(T0), 0.0, "a cell's total is clamped at 0");
        // Others of a newer bucket replace an old cell; of an older one are ignored.
        w.set_others(id + 2, 5);
        assert_eq!(w.count(T0 + 2 * WINDOW_MS), 5.0);
        w.set_others(id, 9);
        assert_eq!(w.count(T0 + 2 * WINDOW_MS), 5.0);
    }

    #[test]
    fn reset_is_when_the_window_empties() {
        let mut w = Sliding::default();
        assert_eq!(w.reset_ms(T0), 0);
        w.add(T0 + 20_000, 1);
        assert_eq!(w.reset_ms(T0 + 20_000), 40_000 + WINDOW_MS);
        assert_eq!(w.reset_ms(T0 + WINDOW_MS + 5_000), 55_000);
    }

    #[test]
    fn fixed_window_rolls_with_its_id() {
        let mut f = Fixed::default();
        f.add(20261122, 50);
        f.adjust(20261122, -20);
        assert_eq!(f.used(20261122), 30);
        assert_eq!(f.used(20261123), 0);
        f.add(20261123, 1);
        f.adjust(20261122, -30); // the old day is gone: no effect
        assert_eq!(f.used(20261123), 1);
    }
}
