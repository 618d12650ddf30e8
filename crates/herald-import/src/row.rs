//! Validating one row: contact address, time zone, required variables, and the variables as a
//! JSON object. Runs on the worker threads.

use crate::dedup::DedupKey;
use crate::header::{ContactKind, Plan};
use crate::model::{Recipient, RowError};
use crate::text::FieldDecode;
use herald_core::schedule::parse_timezone;
use herald_core::{Address, E164, EmailAddress};
use std::borrow::Cow;

/// Longest value quoted back in a row error, in characters.
const MAX_VALUE_CHARS: usize = 200;

/// What became of one non-blank row.
#[derive(Debug)]
pub(crate) enum Outcome {
    Valid { recipient: Recipient, key: DedupKey },
    Invalid(Vec<RowError>),
}

/// What a valid row's check found.
struct Checked<'f> {
    address: Address,
    /// The contact cell as written (untrimmed).
    contact: Cow<'f, str>,
    timezone: Option<String>,
}

/// The longest raw phone value kept with a recipient, in characters.
const MAX_RAW_CONTACT: usize = 64;

/// Everything a worker needs to validate rows, shared read-only.
pub(crate) struct Validator<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) decode: FieldDecode,
    pub(crate) region: Option<&'a str>,
    pub(crate) suppressions: &'a (dyn Fn(&Address) -> bool + Sync),
    /// `"name":` for each variable column, escaped once.
    keys: Vec<String>,
    /// The default region's country calling code (`"1"` for US), if a region is given.
    region_code: Option<String>,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        decode: FieldDecode,
        region: Option<&'a str>,
        suppressions: &'a (dyn Fn(&Address) -> bool + Sync),
    ) -> Self {
        let keys = plan
            .variables
            .iter()
            .map(|(_, name)| {
                let mut key = String::with_capacity(name.len() + 3);
                push_json_string(&mut key, name);
                key.push(':');
                key
            })
            .collect();
        let region_code = region.and_then(|r| {
            herald_core::address::phone_regions()
                .into_iter()
                .find(|(id, _)| id.eq_ignore_ascii_case(r))
                .map(|(_, code)| code.to_string())
        });
        Self {
            plan,
            decode,
            region,
            suppressions,
            keys,
            region_code,
        }
    }

    fn field<'f>(&self, fields: &[&'f [u8]], index: usize) -> Cow<'f, str> {
        match fields.get(index) {
            Some(bytes) => self.decode.decode(bytes),
            None => Cow::Borrowed(""),
        }
    }

    /// Validates a non-blank row whose fields are `fields`.
    pub(crate) fn row(&self, line: u64, fields: &[&[u8]]) -> Outcome {
        let Checked {
            address,
            contact,
            timezone,
        } = match self.check(line, fields) {
            Ok(checked) => checked,
            Err(errors) => return Outcome::Invalid(errors),
        };
        let contact = contact.trim();
        let variables_json = self.variables_json(fields);
        let key = DedupKey::of(&address);
        let suppressed = (self.suppressions)(&address);
        // A phone number as the file wrote it, so that a later, better reading can be checked
        // against it (`herald doctor phones`). Empty when the file wrote the stored number's own
        // digits in another layout: re-reading the stored number is then the same check, and
        // most files (`(415) 555-2671`, `+1 415-555-2671`) keep nothing per row.
        let raw_contact = match &address {
            Address::Phone(p) if p.as_str() == contact => None,
            Address::Phone(p) if self.only_layout(contact, p.as_str()) => Some(String::new()),
            Address::Phone(_) => Some(contact.chars().take(MAX_RAW_CONTACT).collect()),
            Address::Email(_) => None,
        };
        Outcome::Valid {
            recipient: Recipient {
                line,
                address,
                raw_contact,
                timezone,
                variables_json,
                suppressed,
            },
            key,
        }
    }

    /// The key of the row at `line` if it is valid, for finding repeats before the import pass
    /// (`spill.rs`): what [`Validator::row`] decides, without building the recipient.
    pub(crate) fn key(&self, line: u64, fields: &[&[u8]]) -> Option<DedupKey> {
        self.check(line, fields)
            .ok()
            .map(|checked| DedupKey::of(&checked.address))
    }

    /// Whether the row is valid (field count, contact, time zone, required variables), and if so
    /// its address, contact cell and time zone; otherwise every problem found.
    fn check<'f>(&self, line: u64, fields: &[&'f [u8]]) -> Result<Checked<'f>, Vec<RowError>> {
        let plan = self.plan;
        let expected = plan.original.len();
        if fields.len() != expected {
            return Err(vec![RowError {
                line,
                column: None,
                value: String::new(),
                reason: format!(
                    "expected {expected} {}, found {}",
                    plural(expected, "field", "fields"),
                    fields.len()
                ),
            }]);
        }
        let mut errors = Vec::new();
        let contact_raw = self.field(fields, plan.contact);
        let contact = contact_raw.trim();
        let address = match plan.kind {
            ContactKind::Phone => E164::parse(contact, self.region)
                .map(Address::Phone)
                .map_err(|e| e.to_string()),
            ContactKind::Email => EmailAddress::parse(contact)
                .map(Address::Email)
                .map_err(|e| e.to_string()),
        };
        let address = match address {
            Ok(a) => Some(a),
            Err(reason) => {
                errors.push(self.error(line, plan.contact, contact, reason));
                None
            }
        };
        let mut timezone = None;
        if let Some(tz_col) = plan.timezone {
            let raw = self.field(fields, tz_col);
            let name = raw.trim();
            if !name.is_empty() {
                match parse_timezone(name) {
                    Ok(tz) => {
                        timezone = Some(tz.iana_name().unwrap_or(name).to_string());
                    }
                    Err(reason) => errors.push(self.error(line, tz_col, name, reason)),
                }
            }
        }
        for &col in &plan.required {
            if col == plan.contact {
                continue; // already checked, with a better reason
            }
            let raw = self.field(fields, col);
            if raw.trim().is_empty() {
                let name = plan.normalized.get(col).map_or("", String::as_str);
                errors.push(self.error(
                    line,
                    col,
                    "",
                    format!("`{name}` is empty, but the answer uses it"),
                ));
            }
        }
        match address {
            Some(address) if errors.is_empty() => Ok(Checked {
                address,
                contact: contact_raw,
                timezone,
            }),
            _ => Err(errors),
        }
    }

    /// Whether `written` is the E.164 number `stored` in another layout: digits and the usual
    /// separators only, its digits being the stored number's digits, either whole (`+1 415…`,
    /// `1-415-…`) or after the default region's country code (`(415) 555-2671` in region US).
    fn only_layout(&self, written: &str, stored: &str) -> bool {
        let stored = stored.strip_prefix('+').unwrap_or(stored).as_bytes();
        let body = written.strip_prefix('+').unwrap_or(written).as_bytes();
        let mut digits = 0;
        for &b in body {
            match b {
                b'0'..=b'9' => digits += 1,
                b' ' | b'-' | b'.' | b'(' | b')' | b'/' => {}
                _ => return false,
            }
        }
        let rest = if digits == stored.len() {
            stored
        } else {
            match &self.region_code {
                Some(code) if !written.starts_with('+') => {
                    match stored.strip_prefix(code.as_bytes()) {
                        Some(rest) if rest.len() == digits => rest,
                        _ => return false,
                    }
                }
                _ => return false,
            }
        };
        body.iter().filter(|b| b.is_ascii_digit()).eq(rest.iter())
    }

    fn variables_json(&self, fields: &[&[u8]]) -> String {
        let mut out =
            String::with_capacity(16 + fields.iter().map(|f| f.len() + 16).sum::<usize>());
        out.push('{');
        for (n, ((col, _), key)) in self.plan.variables.iter().zip(&self.keys).enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(key);
            let value = self.field(fields, *col);
            push_json_string(&mut out, value.trim());
        }
        out.push('}');
        out
    }

    fn error(&self, line: u64, column: usize, value: &str, reason: String) -> RowError {
        RowError {
            line,
            column: Some(self.plan.column_name(column)),
            value: clip(value),
            reason,
        }
    }
}

fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 { one } else { many }
}

/// Cuts a value quoted back in an error report to a readable length.
pub(crate) fn clip(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => {
            let mut s = value.get(..cut).unwrap_or_default().to_string();
            s.push('…');
            s
        }
        None => value.to_string(),
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices fall on character boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}é\u{2028}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\u{2028}\"");
    }

    #[test]
    fn long_values_are_clipped() {
        let long = "é".repeat(300);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), 201);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
