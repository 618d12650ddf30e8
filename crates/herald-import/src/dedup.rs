//! The addresses an import has accepted so far, for dropping repeats: 12 bytes a slot, sized
//! once from the row count of the first pass.
//!
//! A general hash map would cost 17 bytes a bucket (a 16-byte entry and a control byte) in a
//! power-of-two table: 35.6 MB for a 1,000,000-row file and 142 MB for 5,000,000, the biggest
//! part of an import's memory. This table is an array of `(key, first line)` slots with linear
//! probing, at most three quarters full: 16 MB and 80 MB.
//!
//! A key is exact for a phone number (its E.164 digits are at most 15, which fit in 50 bits) and
//! the low 63 bits of the xxh3 hash of a lower-cased email address. Two different addresses in
//! one email list share a key with a chance of about n²/2⁶⁴: 1 in 740,000 at 5,000,000 rows. The
//! later one is then reported as a duplicate of the earlier one (in the error report, with both
//! lines), not dropped silently.

use herald_core::Address;

/// An address as the table keys it; never 0 (0 marks an empty slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DedupKey(u64);

/// Set on every phone key: phone and email keys never meet.
const PHONE: u64 = 1 << 63;

impl DedupKey {
    pub(crate) fn of(address: &Address) -> Self {
        match address {
            Address::Phone(p) => Self::phone(p.as_str()),
            // Mailboxes differing only in letter case are one person in practice.
            Address::Email(e) => Self::email(&e.as_str().to_lowercase()),
        }
    }

    /// An E.164 number (`+` and up to 15 digits) as its digits' value: exact.
    fn phone(e164: &str) -> Self {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        match digits.parse::<u64>() {
            // A number's first digit (its country code's) is never 0, so the value says the
            // digits' count too; 15 digits are under 2^50.
            Ok(n) if n < 1 << 62 && !digits.starts_with(['0', '+']) => DedupKey(PHONE | n),
            // Not E.164 after all (the parser never hands these out): a hash, with bit 62 set,
            // keeps it apart from every exact key.
            _ => DedupKey(PHONE | 1 << 62 | xxhash_rust::xxh3::xxh3_64(e164.as_bytes()) >> 2),
        }
    }

    fn email(lowercased: &str) -> Self {
        let h = xxhash_rust::xxh3::xxh3_64(lowercased.as_bytes()) & !PHONE;
        DedupKey(h.max(1))
    }

    /// The key's value, as written to the spill files (`spill.rs`).
    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    /// A key read back from a spill file.
    pub(crate) fn from_raw(raw: u64) -> Self {
        DedupKey(raw)
    }

    /// The key spread over all 64 bits: where it goes, in a table or among files.
    pub(crate) fn mixed(self) -> u64 {
        mix(self.0)
    }
}

/// The splitmix64 finalizer: spreads phone keys (which differ in their last digits) over the
/// table.
fn mix(k: u64) -> u64 {
    let mut z = k;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keys seen, with the line each was first seen on.
pub(crate) struct Seen {
    /// `[key low, key high, line]`; key 0 is an empty slot.
    slots: Vec<[u32; 3]>,
    len: usize,
}

/// At most this share of the slots is used (then the table doubles).
const MAX_LOAD: (usize, usize) = (3, 4);

impl Seen {
    /// A table for up to `rows` keys without growing.
    pub(crate) fn with_rows(rows: usize) -> Self {
        let slots = rows.saturating_mul(MAX_LOAD.1).div_ceil(MAX_LOAD.0).max(16);
        Seen {
            slots: vec![[0; 3]; slots],
            len: 0,
        }
    }

    fn home(&self, key: DedupKey) -> usize {
        ((u128::from(key.mixed()) * self.slots.len() as u128) >> 64) as usize
    }

    /// Records `key` first seen on `line`; if it was seen before, returns that line instead
    /// (`u32::MAX` for a line past `u32`).
    pub(crate) fn insert(&mut self, key: DedupKey, line: u32) -> Option<u32> {
        if (self.len + 1) * MAX_LOAD.1 > self.slots.len() * MAX_LOAD.0 {
            self.grow();
        }
        let (lo, hi) = (key.0 as u32, (key.0 >> 32) as u32);
        let n = self.slots.len();
        let mut i = self.home(key);
        loop {
            let slot = &mut self.slots[i];
            if slot[0] == 0 && slot[1] == 0 {
                *slot = [lo, hi, line];
                self.len += 1;
                return None;
            }
            if slot[0] == lo && slot[1] == hi {
                return Some(slot[2]);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    fn grow(&mut self) {
        let bigger = vec![[0; 3]; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        self.len = 0;
        for [lo, hi, line] in old {
            if lo != 0 || hi != 0 {
                self.insert(DedupKey(u64::from(lo) | (u64::from(hi) << 32)), line);
            }
        }
    }

    /// Bytes the table holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<[u32; 3]>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::{E164, EmailAddress};

    fn phone(s: &str) -> Address {
        Address::Phone(E164::parse(s, None).unwrap())
    }

    #[test]
    fn repeats_are_found_with_their_first_line() {
        let mut seen = Seen::with_rows(4);
        assert_eq!(seen.insert(DedupKey::of(&phone("+14155552671")), 2), None);
        assert_eq!(seen.insert(DedupKey::of(&phone("+442079460958")), 3), None);
        assert_eq!(
            seen.insert(DedupKey::of(&phone("+14155552671")), 9),
            Some(2)
        );
        let mail = |s: &str| Address::Email(EmailAddress::parse(s).unwrap());
        assert_eq!(seen.insert(DedupKey::of(&mail("Ana@Example.com")), 4), None);
        assert_eq!(
            seen.insert(DedupKey::of(&mail("ana@example.com")), 5),
            Some(4)
        );
    }

    #[test]
    fn phone_keys_are_exact() {
        // Every number differing in one digit, or in length, keys differently.
        let base = "+14155552671";
        let k = DedupKey::phone(base);
        assert_eq!(k, DedupKey::phone(base));
        for i in 1..base.len() {
            for d in b'0'..=b'9' {
                let mut s = base.as_bytes().to_vec();
                if s[i] == d {
                    continue;
                }
                s[i] = d;
                let other = String::from_utf8(s).unwrap();
                assert_ne!(DedupKey::phone(&other), k, "{other}");
            }
        }
        assert_ne!(DedupKey::phone("+1415555267"), k);
        assert_ne!(DedupKey::phone("+141555526710"), k);
        assert_ne!(DedupKey::phone("+999999999999999").0 & !PHONE, 0);
    }

    #[test]
    fn a_million_distinct_keys_stay_distinct_and_the_table_does_not_grow() {
        let rows = 1_000_000;
        let mut seen = Seen::with_rows(rows);
        let before = seen.bytes();
        for n in 0..rows as u64 {
            let number = format!("+1{}", 2_000_000_000 + n * 7);
            assert_eq!(seen.insert(DedupKey::phone(&number), n as u32), None);
        }
        assert_eq!(seen.len, rows);
        assert_eq!(seen.bytes(), before, "sized from the row count: no growth");
        assert!(before <= rows * 16 + 64, "{before} bytes for {rows} rows");
        // Every one of them is found again, with its own line.
        for n in (0..rows as u64).step_by(997) {
            let number = format!("+1{}", 2_000_000_000 + n * 7);
            assert_eq!(seen.insert(DedupKey::phone(&number), 0), Some(n as u32));
        }
    }

    #[test]
    fn more_keys_than_planned_grow_the_table() {
        let mut seen = Seen::with_rows(1);
        for n in 0..1000u32 {
            assert_eq!(seen.insert(DedupKey::email(&format!("{n}@x.io")), n), None);
        }
        for n in 0..1000u32 {
            assert_eq!(
                seen.insert(DedupKey::email(&format!("{n}@x.io")), 0),
                Some(n)
            );
        }
        assert!(seen.slots.len() * 3 >= seen.len * 4);
    }
}
