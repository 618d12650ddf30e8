//! SMS encoding and segment count: how many messages a body costs, and in which alphabet.
//!
//! A body made only of characters in the GSM 03.38 default alphabet (its basic set plus the
//! extension table) is sent as **GSM-7**: 7-bit septets, 160 to a single message, 153 to each part
//! of a concatenated one (the user-data header takes the rest). The extension characters
//! `^ { } \ [ ~ ] | €` and form feed take two septets each (an escape, then the character), and the
//! pair is never split across two parts.
//!
//! Any other character (a curly quote `’`, an emoji, Cyrillic, Chinese, ...) switches the whole
//! body to **UCS-2**: UTF-16 code units, 70 to a single message, 67 to each part of a
//! concatenated one. A character outside the Basic Multilingual Plane (most emoji) takes two code
//! units, a surrogate pair, which is never split across two parts either.
//!
//! National language shift tables (Turkish, Spanish, Portuguese, Indian languages) are not used:
//! carriers support them unevenly, so Herald counts the way a plain GSM/UCS-2 gateway sends.
//!
//! JSON: `{"encoding": "gsm7", "segments": 2, "units": 161}`; the encoding is `gsm7` or `ucs2`
//! (lower case, like Herald's other enums); [`SmsEncoding`]'s `Display` gives the human names
//! `GSM-7` and `UCS-2`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Septets in a single GSM-7 message.
pub const GSM7_SINGLE: u32 = 160;
/// Septets in each part of a concatenated GSM-7 message.
pub const GSM7_PART: u32 = 153;
/// UTF-16 code units in a single UCS-2 message.
pub const UCS2_SINGLE: u32 = 70;
/// UTF-16 code units in each part of a concatenated UCS-2 message.
pub const UCS2_PART: u32 = 67;

/// The alphabet an SMS body is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SmsEncoding {
    /// The GSM 03.38 default alphabet, 7 bits a character (`gsm7` in JSON).
    #[serde(rename = "gsm7")]
    Gsm7,
    /// UTF-16, 16 bits a code unit (`ucs2` in JSON).
    #[serde(rename = "ucs2")]
    Ucs2,
}

impl SmsEncoding {
    /// The JSON name: `gsm7` or `ucs2`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "gsm7",
            SmsEncoding::Ucs2 => "ucs2",
        }
    }

    /// Units that fit in a message sent on its own (160 septets or 70 code units).
    pub fn single_capacity(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => GSM7_SINGLE,
            SmsEncoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units that fit in each part of a concatenated message (153 septets or 67 code units).
    pub fn part_capacity(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => GSM7_PART,
            SmsEncoding::Ucs2 => UCS2_PART,
        }
    }
}

/// `GSM-7` or `UCS-2`, as people write them.
impl fmt::Display for SmsEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        })
    }
}

/// What an SMS body costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsInfo {
    /// The alphabet the body is sent in.
    pub encoding: SmsEncoding,
    /// Messages the body is split into. An empty body still counts as one message.
    pub segments: u32,
    /// Length in the encoding's units: GSM-7 septets (extension characters count two) or UTF-16
    /// code units (characters outside the BMP, such as most emoji, count two).
    pub units: u32,
}

/// Septets a character takes in GSM-7: 1 for the basic set, 2 for the extension table (escape
/// plus character), `None` when the character has no GSM-7 form.
pub fn gsm7_septets(c: char) -> Option<u32> {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' => Some(1),
        // Basic set, ASCII part. Not in it: the backtick and tab (and `^{}\[~]|`, see below).
        ' ' | '!' | '"' | '#' | '$' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.'
        | '/' | ':' | ';' | '<' | '=' | '>' | '?' | '@' | '_' | '\n' | '\r' => Some(1),
        // Basic set, beyond ASCII.
        '\u{00A3}' // £
        | '\u{00A5}' // ¥
        | '\u{00E8}' // è
        | '\u{00E9}' // é
        | '\u{00F9}' // ù
        | '\u{00EC}' // ì
        | '\u{00F2}' // ò
        | '\u{00C7}' // Ç
        | '\u{00D8}' // Ø
        | '\u{00F8}' // ø
        | '\u{00C5}' // Å
        | '\u{00E5}' // å
        | '\u{0394}' // Δ
        | '\u{03A6}' // Φ
        | '\u{0393}' // Γ
        | '\u{039B}' // Λ
        | '\u{03A9}' // Ω
        | '\u{03A0}' // Π
        | '\u{03A8}' // Ψ
        | '\u{03A3}' // Σ
        | '\u{0398}' // Θ
        | '\u{039E}' // Ξ
        | '\u{00C6}' // Æ
        | '\u{00E6}' // æ
        | '\u{00DF}' // ß
        | '\u{00C9}' // É
        | '\u{00A4}' // ¤
        | '\u{00A1}' // ¡
        | '\u{00C4}' // Ä
        | '\u{00D6}' // Ö
        | '\u{00D1}' // Ñ
        | '\u{00DC}' // Ü
        | '\u{00A7}' // §
        | '\u{00BF}' // ¿
        | '\u{00E4}' // ä
        | '\u{00F6}' // ö
        | '\u{00F1}' // ñ
        | '\u{00FC}' // ü
        | '\u{00E0}' // à
        => Some(1),
        // Extension table: escape + character.
        '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '\u{20AC}' /* € */ | '\u{0C}' /* form feed */ => {
            Some(2)
        }
        _ => None,
    }
}

/// Whether the whole body can be sent in GSM-7.
pub fn is_gsm7(body: &str) -> bool {
    body.chars().all(|c| gsm7_septets(c).is_some())
}

/// The characters that force a body into UCS-2, in order of appearance, each once. Empty when the
/// body is GSM-7. Handy for telling a person "the ’ in your answer doubles the cost".
pub fn non_gsm7_chars(body: &str) -> Vec<char> {
    let mut seen = Vec::new();
    for c in body.chars() {
        if gsm7_septets(c).is_none() && !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen
}

/// The encoding, length and segment count of an SMS body.
pub fn analyze(body: &str) -> SmsInfo {
    let gsm: Option<u32> = body.chars().map(gsm7_septets).sum();
    match gsm {
        Some(units) => SmsInfo {
            encoding: SmsEncoding::Gsm7,
            segments: segments(
                units,
                GSM7_SINGLE,
                GSM7_PART,
                body.chars().filter_map(gsm7_septets),
            ),
            units,
        },
        None => {
            let units = saturating_u32(body.encode_utf16().count());
            SmsInfo {
                encoding: SmsEncoding::Ucs2,
                segments: segments(
                    units,
                    UCS2_SINGLE,
                    UCS2_PART,
                    body.chars().map(|c| saturating_u32(c.len_utf16())),
                ),
                units,
            }
        }
    }
}

/// Messages needed for `units` in total, given each character's width: one when it all fits a
/// single message, else parts filled greedily so that no character (escape pair, surrogate pair)
/// is split across two parts.
fn segments(units: u32, single: u32, part: u32, widths: impl Iterator<Item = u32>) -> u32 {
    if units <= single {
        return 1;
    }
    let mut count = 1u32;
    let mut used = 0u32;
    for w in widths {
        if used.saturating_add(w) > part {
            count = count.saturating_add(1);
            used = 0;
        }
        used = used.saturating_add(w);
    }
    count
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_has_127_basic_and_10_extension_characters() {
        let all = || (0u32..=0x10FFFF).filter_map(char::from_u32);
        let basic: Vec<char> = all().filter(|&c| gsm7_septets(c) == Some(1)).collect();
        let ext: Vec<char> = all().filter(|&c| gsm7_septets(c) == Some(2)).collect();
        // 128 code points in the basic table, one of which is the escape to the extension table.
        assert_eq!(basic.len(), 127, "{basic:?}");
        assert_eq!(ext.len(), 10, "{ext:?}");
        for c in "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà".chars() {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
        for c in "^{}\\[~]|€\u{0C}".chars() {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
        for c in "`\t’“”…çÀ😀\u{2126}\u{1B}".chars() {
            assert_eq!(gsm7_septets(c), None, "{c:?}");
        }
    }

    #[test]
    fn display_and_json_names() {
        assert_eq!(SmsEncoding::Gsm7.to_string(), "GSM-7");
        assert_eq!(SmsEncoding::Ucs2.to_string(), "UCS-2");
        let json = serde_json::to_value(analyze("hi")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"encoding": "gsm7", "segments": 1, "units": 2})
        );
        let back: SmsInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, analyze("hi"));
        assert_eq!(
            serde_json::to_value(SmsEncoding::Ucs2).unwrap(),
            serde_json::json!(SmsEncoding::Ucs2.as_str())
        );
    }

    #[test]
    fn culprits_are_listed_once_in_order() {
        assert_eq!(non_gsm7_chars("It’s 😀 time’s up"), vec!['’', '😀']);
        assert!(non_gsm7_chars("plain {text} €5").is_empty());
        assert!(is_gsm7("plain {text} €5"));
        assert!(!is_gsm7("naïve"));
    }
}
