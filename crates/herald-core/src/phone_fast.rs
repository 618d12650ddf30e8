//! A lock-free fast path for [`crate::E164::parse`].
//!
//! `phonenumber` 0.3 keeps every compiled metadata regex in one process-wide
//! `Mutex<LruCache>` of 100 entries (crate `regex-cache`), while its metadata holds thousands
//! of patterns: every parse locks that mutex several times and usually recompiles a regex, so a
//! parse costs ~12 µs and does not scale across threads.
//!
//! This module re-implements, step by step, what `phonenumber::parse`, `phonenumber::is_valid`
//! and `format(E164)` do (read against `phonenumber-0.3.10+9.0.33`: `parser/mod.rs`,
//! `parser/helper.rs`, `parser/rfc3966.rs`, `parser/valid.rs`, `validator.rs`,
//! `metadata/descriptor.rs`, `national_number.rs`) for the common shapes of input only, with its
//! own automata compiled from the same metadata (`phonenumber::metadata::DATABASE`) once per
//! region, on first use, and kept in a `OnceLock`. It answers `None` ("not sure") for anything
//! else and the caller then runs the original `phonenumber` code, so results are the same by
//! construction outside the fast path, and by the equivalence tests
//! (`tests/phone_fast_equivalence.rs`) inside it.
//!
//! Handled shapes: ASCII digits with the separators space, `-`, `.`, `(`, `)`, and an optional
//! single leading `+`. Anything else (letters, extensions, `;`, `/`, `#`, `*`, non-ASCII digits,
//! a leading international dialling prefix of the default region such as `011` in the US or
//! `00` in DE, ...) falls back.
//!
//! Semantics of the original that are reproduced on purpose (they are surprising):
//! * a `+` number written without spaces but with `-`, `.`, `(` or `)` is read as RFC 3966:
//!   the country code is *all* digits between `+` and the first such separator
//!   (`+4420-7946-0958` has country code 4420 and is refused, `+44-20-7946-0958` is fine);
//! * when a default region is given, its metadata (not the number's) is used to strip a
//!   national prefix, even from `+CC` numbers;
//! * metadata patterns are matched as a *prefix* of the national number (`find` + start == 0),
//!   after a check of the descriptor's possible lengths.

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};
use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Inputs longer than this go to the slow path (no real phone number is that long).
const MAX_INPUT: usize = 64;
/// `consts::MIN_LENGTH_FOR_NSN` / `MAX_LENGTH_FOR_NSN` in `phonenumber`.
const MIN_NSN: usize = 2;
const MAX_NSN: usize = 17;

/// Which [`crate::address::PhoneError`] the original code would return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastError {
    /// `phonenumber::parse` failed with anything but `InvalidCountryCode`.
    NotANumber,
    /// `phonenumber::parse` failed with `InvalidCountryCode`.
    NoCountry,
    /// Parsed, but `phonenumber::is_valid` is false.
    Invalid,
}

/// A metadata pattern as an anchored dense DFA: "some match starts at 0" is exactly what the
/// original checks with `find(..).start() == 0` (a match starting at 0 is the leftmost one).
/// DFA searches need no mutable cache, so they take no lock and share nothing between threads
/// (`regex::Regex` keeps its caches in a pool that is only lock-free for the thread that
/// created it). The fast path only ever feeds ASCII digit strings, on which Unicode and ASCII
/// `\d` agree, so the DFAs are built without Unicode (smaller, faster to build); the options
/// are otherwise those of `regex-cache` (`ignore_whitespace`).
struct Prefix(dense::DFA<Vec<u32>>);

impl Prefix {
    fn new(src: &str) -> Option<Prefix> {
        let build = |unicode: bool| {
            dense::Builder::new()
                .configure(dense::Config::new().start_kind(StartKind::Anchored))
                .syntax(
                    syntax::Config::new()
                        .ignore_whitespace(true)
                        .unicode(unicode),
                )
                .build(src)
                .ok()
        };
        build(false).or_else(|| build(true)).map(Prefix)
    }

    /// `None` if the search gave up (it cannot for these patterns; not sure otherwise).
    fn matches(&self, value: &str) -> Option<bool> {
        let input = Input::new(value).anchored(Anchored::Yes).earliest(true);
        self.0.try_search_fwd(&input).ok().map(|m| m.is_some())
    }
}

/// A metadata descriptor: possible lengths + the national number pattern.
struct Desc {
    re: Prefix,
    lengths: Box<[u16]>,
}

impl Desc {
    /// `Descriptor::is_match`.
    fn is_match(&self, value: &str) -> Option<bool> {
        if !self.lengths.is_empty() {
            let Ok(len) = u16::try_from(value.len()) else {
                return Some(false);
            };
            if !self.lengths.contains(&len) {
                return Some(false);
            }
        }
        self.re.matches(value)
    }
}

/// Everything the fast path needs of one metadata entry.
struct Region {
    code: u16,
    code_str: String,
    /// `country::Id::from_str(id)` succeeds (the original `unwrap`s or drops it otherwise).
    valid_id: bool,
    non_geo: bool,
    general: Desc,
    general_local: Box<[u16]>,
    /// Every descriptor `validator::number_type` checks after the general one.
    types: Vec<Desc>,
    idd: Option<Prefix>,
    national_prefix: Option<String>,
    /// National prefix for parsing: a DFA for the common "does not apply" answer, and a
    /// `regex::Regex` for captures and the transform rule when it does.
    npfp: Option<(Prefix, Regex)>,
    transform: Option<String>,
    leading_digits: Option<Prefix>,
}

/// A pattern compiled like `regex-cache` does (`ignore_whitespace`), anchored at the start:
/// leftmost-first priorities inside the group are unchanged, so captures and `replace` agree
/// with the unanchored original whenever its match starts at 0. The newline ends a possible
/// `#` comment of extended mode before the closing parenthesis.
fn anchored(src: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{src}\n)"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

fn desc(d: &Descriptor) -> Option<Desc> {
    Some(Desc {
        re: Prefix::new(d.national_number().as_str())?,
        lengths: d.possible_length().into(),
    })
}

impl Region {
    fn compile(meta: &Metadata) -> Option<Region> {
        let ds = meta.descriptors();
        let general = desc(ds.general())?;
        let mut types = Vec::new();
        for d in [
            ds.premium_rate(),
            ds.toll_free(),
            ds.shared_cost(),
            ds.voip(),
            ds.personal_number(),
            ds.pager(),
            ds.uan(),
            ds.voicemail(),
            ds.fixed_line(),
            ds.mobile(),
        ]
        .into_iter()
        .flatten()
        {
            types.push(desc(d)?);
        }
        let opt_re = |src: Option<&str>| -> Option<Option<Prefix>> {
            match src {
                None => Some(None),
                Some(src) => Prefix::new(src).map(Some),
            }
        };
        let npfp = match meta.national_prefix_for_parsing() {
            None => None,
            Some(re) => Some((Prefix::new(re.as_str())?, anchored(re.as_str())?)),
        };
        Some(Region {
            code: meta.country_code(),
            code_str: meta.country_code().to_string(),
            valid_id: meta.id().parse::<phonenumber::country::Id>().is_ok(),
            non_geo: meta.id() == "001",
            general,
            general_local: ds.general().possible_local_length().into(),
            types,
            idd: opt_re(meta.international_prefix().map(|r| r.as_str()))?,
            national_prefix: meta.national_prefix().map(str::to_owned),
            npfp,
            transform: meta.national_prefix_transform_rule().map(str::to_owned),
            leading_digits: opt_re(meta.leading_digits().map(|r| r.as_str()))?,
        })
    }

    /// `validator::number_type(meta, value) != Type::Unknown`.
    fn has_type(&self, value: &str) -> Option<bool> {
        if !self.general.is_match(value)? {
            return Some(false);
        }
        for d in &self.types {
            if d.is_match(value)? {
                return Some(true);
            }
        }
        Some(false)
    }

    /// `validator::length(meta, number, Type::Unknown)`.
    fn length(&self, len: usize) -> Length {
        let possible = &self.general.lengths;
        let (Some(&min), Some(&max)) = (possible.first(), possible.last()) else {
            return Length::Invalid;
        };
        let Ok(len) = u16::try_from(len) else {
            return Length::TooLong;
        };
        // `IsPossibleLocalOnly` and `IsPossible` are told apart by the original, but only
        // `is_possible()` and `!= TooShort` are ever asked of them.
        if self.general_local.contains(&len) || len == min {
            Length::Possible
        } else if len < min {
            Length::TooShort
        } else if len > max {
            Length::TooLong
        } else if possible.contains(&len) {
            Length::Possible
        } else {
            Length::Invalid
        }
    }

    /// `helper::national_number` (national prefix for parsing / transform rule), on digits.
    /// `None` where the original would panic (`first.unwrap()`), so the caller falls back.
    fn strip_national_prefix(&self, national: &str) -> Option<String> {
        let Some((parsing_dfa, parsing)) = &self.npfp else {
            if let Some(prefix) = &self.national_prefix
                && let Some(rest) = national.strip_prefix(prefix.as_str())
            {
                return Some(rest.to_owned());
            }
            return Some(national.to_owned());
        };
        if !parsing_dfa.matches(national)? {
            return Some(national.to_owned());
        }
        let Some(caps) = parsing.captures(national) else {
            return Some(national.to_owned());
        };
        let end = caps.get(0)?.end();
        let viable = self.general.is_match(national)?;
        let last = caps.get(caps.len().saturating_sub(1));
        match (&self.transform, last) {
            (Some(transform), Some(_)) => {
                let transformed = parsing.replace(national, transform.as_str()).into_owned();
                if viable && !self.general.is_match(&transformed)? {
                    return Some(national.to_owned());
                }
                // The original takes group 1 as the carrier with `unwrap`.
                caps.get(1)?;
                Some(transformed)
            }
            _ => Some(national.get(end..)?.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    TooShort,
    TooLong,
    Invalid,
}

struct Slot {
    meta: &'static Metadata,
    compiled: OnceLock<Option<Region>>,
}

struct Table {
    slots: Vec<Slot>,
    /// Country calling code -> slots, in `Database::region` / `Database::by_code` order.
    by_code: HashMap<u16, Vec<usize>>,
    /// Codes whose every entry is also what `Database::by_id` returns for its id (the original
    /// walks `region` ids and looks each up with `by_id`; this table walks the entries).
    by_id_consistent: HashMap<u16, bool>,
    /// Region id -> slot, only where `Database::by_id` returns that very entry.
    by_id: HashMap<&'static str, usize>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let db: &'static phonenumber::metadata::Database = &DATABASE;
        // Country calling codes have at most three digits. (`Database::iter` is no help: it
        // walks `by_id`, which keeps only one of the many non-geographic "001" entries.)
        let codes = 1..=999u16;
        let mut slots = Vec::new();
        let mut by_code = HashMap::new();
        let mut by_id = HashMap::new();
        let mut by_id_consistent = HashMap::new();
        for code in codes {
            let Some(metas) = db.by_code(&code) else {
                continue;
            };
            let mut indices = Vec::with_capacity(metas.len());
            let mut consistent = true;
            for meta in metas {
                let index = slots.len();
                slots.push(Slot {
                    meta,
                    compiled: OnceLock::new(),
                });
                indices.push(index);
                if db.by_id(meta.id()).is_some_and(|m| std::ptr::eq(m, meta)) {
                    by_id.insert(meta.id(), index);
                } else {
                    consistent = false;
                }
            }
            by_code.insert(code, indices);
            by_id_consistent.insert(code, consistent);
        }
        Table {
            slots,
            by_code,
            by_id_consistent,
            by_id,
        }
    })
}

impl Table {
    fn region(&self, slot: usize) -> Option<&Region> {
        let slot = self.slots.get(slot)?;
        slot.compiled
            .get_or_init(|| Region::compile(slot.meta))
            .as_ref()
    }

    /// `validator::source_for` followed by the `by_id` / `by_code(..).first()` lookup of its
    /// callers. Outer `None`: not sure; inner `None`: no metadata.
    fn source_for(&self, code: u16, national: &str) -> Option<Option<&Region>> {
        let Some(slots) = self.by_code.get(&code) else {
            return Some(None);
        };
        if let [only] = slots.as_slice() {
            let region = self.region(*only)?;
            if region.non_geo {
                return Some(Some(region));
            }
            if !region.valid_id {
                return Some(None);
            }
            // `Left(id)` is looked up by id again: make sure that is the same entry.
            return (self.by_id.get(region_id(self, *only)?) == Some(only)).then_some(Some(region));
        }
        if self.by_id_consistent.get(&code) != Some(&true) {
            return None;
        }
        for &slot in slots {
            let region = self.region(slot)?;
            let chosen = match &region.leading_digits {
                Some(re) => re.matches(national)?,
                None => region.has_type(national)?,
            };
            if chosen {
                // The original `parse().unwrap()`s the id (and would panic).
                return region.valid_id.then_some(Some(region));
            }
        }
        Some(None)
    }
}

fn region_id(table: &Table, slot: usize) -> Option<&'static str> {
    table.slots.get(slot).map(|s| s.meta.id())
}

fn is_rfc_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

fn digits_of(s: &str) -> String {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(char::from)
        .collect()
}

/// The fast path. `text` and `region` are exactly what `E164::parse` would hand to
/// `phonenumber::parse`. `None` means "not sure: ask `phonenumber`"; `Some` is the E.164 string
/// or which error the original gives.
pub(crate) fn parse(text: &str, region: Option<&str>) -> Option<Result<String, FastError>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_INPUT {
        return None;
    }
    let mut has_space = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'0'..=b'9' | b'-' | b'.' | b'(' | b')' => {}
            b' ' => has_space = true,
            b'+' if i == 0 => {}
            _ => return None,
        }
    }
    let plus = bytes.first() == Some(&b'+');
    let t = table();

    // The default region's metadata; a region unknown to the database goes the slow way.
    let default = match region {
        Some(id) => Some(t.region(*t.by_id.get(id)?)?),
        None => None,
    };

    // 1. `alt((rfc3966::phone_number, natural::phone_number))`.
    //    RFC 3966 (no spaces allowed): `+` then a prefix up to the first of `-.()`, then the
    //    national part, which must run to the end. It fails (and natural parsing is used) when
    //    the prefix is empty or takes the whole rest.
    let mut rfc_prefix: Option<&str> = None;
    let mut raw: Option<&str> = None;
    if !has_space {
        if plus {
            let rest = text.get(1..)?;
            if let Some(p) = rest.bytes().position(is_rfc_separator)
                && p > 0
            {
                rfc_prefix = Some(rest.get(..p)?);
                raw = Some(rest.get(p..)?);
            }
        } else {
            raw = Some(text);
        }
    }
    let raw = match raw {
        Some(raw) => raw,
        None => {
            // Natural: `extract` keeps from the first `+`/digit to the last digit (trailing
            // non-alphanumerics go); no extension pattern can match this alphabet.
            let start = bytes
                .iter()
                .position(|&b| b == b'+' || b.is_ascii_digit())?;
            let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
            text.get(start..end)?
        }
    };

    // 2. `is_viable`: two digits alone, or at least three digits among punctuation.
    let digit_count = raw.bytes().filter(u8::is_ascii_digit).count();
    let viable = raw.len() >= MIN_NSN && ((raw.len() == 2 && digit_count == 2) || digit_count >= 3);
    if !viable {
        return Some(Err(FastError::NotANumber));
    }

    // 3. `international_prefix` + normalization (separators and `+` are dropped).
    let mut national = digits_of(raw);
    let from_plus = rfc_prefix.is_some() || raw.starts_with('+');
    if rfc_prefix.is_none()
        && let Some(idd) = default.and_then(|r| r.idd.as_ref())
        && idd.matches(&national)?
    {
        // An IDD (`011`, `00`, ...) after `+` or at the start: rare, left to the original.
        return None;
    }

    // 4. `country_code`.
    let code: u16 = if from_plus {
        if national.len() <= MIN_NSN {
            return Some(Err(FastError::NotANumber));
        }
        if let Some(prefix) = rfc_prefix {
            let Ok(code) = prefix.parse::<u16>() else {
                return Some(Err(FastError::NotANumber));
            };
            if !t.by_code.contains_key(&code) {
                return Some(Err(FastError::NoCountry));
            }
            code
        } else {
            if national.starts_with('0') {
                return Some(Err(FastError::NoCountry));
            }
            let mut found = None;
            for len in 1..=3 {
                let code = national.get(..len)?.parse::<u16>().ok()?;
                if t.by_code.contains_key(&code) {
                    found = Some((code, len));
                    break;
                }
            }
            let Some((code, len)) = found else {
                return Some(Err(FastError::NoCountry));
            };
            national.drain(..len);
            code
        }
    } else {
        // No `+`: the default region's code (the caller guarantees a region here; without one
        // the original fails with `InvalidCountryCode`, left to it).
        let region = default?;
        if national.starts_with(region.code_str.as_str())
            && (!region.general.is_match(&national)?
                || !matches!(region.length(national.len()), Length::Possible))
        {
            national.drain(..region.code_str.len());
        }
        region.code
    };

    // 5. Metadata for the national prefix: the default region's, else the number's.
    let meta = match default {
        Some(region) => Some(region),
        None => t.source_for(code, national.trim_start_matches('0'))?,
    };
    if let Some(meta) = meta {
        let mut potential = meta.strip_national_prefix(&national)?;
        if let Some(prefix) = &meta.national_prefix
            && potential.starts_with(prefix.as_str())
        {
            potential.drain(..prefix.len());
        }
        if meta.length(potential.len()) != Length::TooShort {
            national = potential;
        }
    }

    // 6. NSN length and `NationalNumber::from_str` (value below 2^56, not all zeros).
    if national.len() < MIN_NSN || national.len() > MAX_NSN {
        return Some(Err(FastError::NotANumber));
    }
    let zeros = national.bytes().take_while(|&b| b == b'0').count();
    match national.get(zeros..).map(str::parse::<u64>) {
        Some(Ok(value)) if value < (1 << 56) => {}
        _ => return Some(Err(FastError::NotANumber)),
    }

    // 7. `is_valid`: the number's own metadata, and a known number type.
    let valid = match t.source_for(code, &national)? {
        Some(region) => region.has_type(&national)?,
        None => false,
    };
    if !valid {
        return Some(Err(FastError::Invalid));
    }
    Some(Ok(format!("+{code}{national}")))
}
