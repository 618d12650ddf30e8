//! Contact addresses: E.164 phone numbers and email addresses, parsed once and valid ever after.

use crate::phone_fast::FastError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

/// A phone number in E.164 form (`+14155550123`), checked against libphonenumber's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("`{0}` is not a phone number")]
    NotANumber(String),
    #[error(
        "`{0}` has no country code; write it as +<country code><number> or give a default region"
    )]
    NoCountry(String),
    #[error("`{0}` is not a valid phone number for its country")]
    Invalid(String),
    #[error("`{0}` is not a known region (use an ISO 3166 alpha-2 code such as US, GB, DE)")]
    UnknownRegion(String),
}

impl E164 {
    /// Parses a number as a person might write it. A number without `+country` is read in
    /// `default_region` (ISO 3166 alpha-2), if one is given.
    ///
    /// Common shapes (digits, spaces, `-`, `.`, `(`, `)`, a leading `+`) take a lock-free fast
    /// path (`phone_fast`) that gives the same results as the `phonenumber` crate; everything
    /// else is handed to `phonenumber` itself.
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let (trimmed, region, text) = prepare(input, default_region)?;
        if let Some(fast) = crate::phone_fast::parse(&text, region.as_ref().map(|id| id.as_ref())) {
            return fast.map(Self).map_err(|e| e.into_phone_error(trimmed));
        }
        parse_with_phonenumber(trimmed, region, &text)
    }

    /// [`E164::parse`] with every number handed to the `phonenumber` crate: the reference the
    /// fast path is tested against, and the baseline of `examples/phone_bench.rs`. Slow, and it
    /// does not scale across threads (one process-wide regex-cache mutex).
    #[doc(hidden)]
    pub fn parse_reference(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let (trimmed, region, text) = prepare(input, default_region)?;
        parse_with_phonenumber(trimmed, region, &text)
    }

    /// Only the fast path of [`E164::parse`]: `None` where it would fall back to `phonenumber`.
    /// For the equivalence tests and the benchmark.
    #[doc(hidden)]
    pub fn parse_fast_only(
        input: &str,
        default_region: Option<&str>,
    ) -> Option<Result<Self, PhoneError>> {
        let (trimmed, region, text) = match prepare(input, default_region) {
            Ok(prepared) => prepared,
            Err(e) => return Some(Err(e)),
        };
        let fast = crate::phone_fast::parse(&text, region.as_ref().map(|id| id.as_ref()))?;
        Some(fast.map(Self).map_err(|e| e.into_phone_error(trimmed)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166 region the number belongs to, when libphonenumber can tell.
    pub fn region(&self) -> Option<String> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        number.country().id().map(|id| id.as_ref().to_string())
    }
}

/// The checks and rewriting `E164::parse` does before `phonenumber::parse`: the trimmed input,
/// the default region, and the text to parse.
fn prepare<'a>(
    input: &'a str,
    default_region: Option<&str>,
) -> Result<(&'a str, Option<phonenumber::country::Id>, Cow<'a, str>), PhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    if !trimmed.chars().any(|c| c.is_ascii_digit()) {
        return Err(PhoneError::NotANumber(trimmed.to_string()));
    }
    let region = match default_region {
        Some(code) => Some(parse_region(code)?),
        None => None,
    };
    let has_plus = trimmed.starts_with('+') || trimmed.starts_with("00");
    if region.is_none() && !has_plus {
        return Err(PhoneError::NoCountry(trimmed.to_string()));
    }
    // `00` is the international prefix in most of the world; without a region to tell us,
    // read it as `+`.
    let text = match trimmed.strip_prefix("00") {
        Some(rest) if region.is_none() => Cow::Owned(format!("+{rest}")),
        _ => Cow::Borrowed(trimmed),
    };
    Ok((trimmed, region, text))
}

fn parse_with_phonenumber(
    trimmed: &str,
    region: Option<phonenumber::country::Id>,
    text: &str,
) -> Result<E164, PhoneError> {
    // `phonenumber` can panic on a few odd inputs (an unwrap in its national-prefix handling);
    // input must never take the process down, so such a number is simply not a number.
    let parsed = std::panic::catch_unwind(|| phonenumber::parse(region, text))
        .map_err(|_| PhoneError::NotANumber(trimmed.to_string()))?;
    let number = parsed.map_err(|e| match e {
        phonenumber::ParseError::InvalidCountryCode => PhoneError::NoCountry(trimmed.to_string()),
        _ => PhoneError::NotANumber(trimmed.to_string()),
    })?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid(trimmed.to_string()));
    }
    let formatted = number.format().mode(phonenumber::Mode::E164).to_string();
    Ok(E164(formatted))
}

impl FastError {
    fn into_phone_error(self, trimmed: &str) -> PhoneError {
        match self {
            FastError::NotANumber => PhoneError::NotANumber(trimmed.to_string()),
            FastError::NoCountry => PhoneError::NoCountry(trimmed.to_string()),
            FastError::Invalid => PhoneError::Invalid(trimmed.to_string()),
        }
    }
}

/// Parses an ISO 3166 alpha-2 region code known to libphonenumber.
pub fn parse_region(code: &str) -> Result<phonenumber::country::Id, PhoneError> {
    // `Id::from_str` tries the ~250 names one by one; an import parses the same default region
    // for every row, so each thread remembers the last one.
    thread_local! {
        static LAST: Cell<Option<([u8; 4], phonenumber::country::Id)>> = const { Cell::new(None) };
    }
    let trimmed = code.trim();
    // The key is the exact text `Id::from_str` gets: up to 3 upper-cased bytes and the length.
    let mut key = [0u8; 4];
    let short = trimmed.len() <= 3;
    if short {
        key[3] = trimmed.len() as u8;
        for (k, b) in key.iter_mut().zip(trimmed.bytes()) {
            *k = b.to_ascii_uppercase();
        }
        if let Some((last, id)) = LAST.get()
            && last == key
        {
            return Ok(id);
        }
    }
    let id = phonenumber::country::Id::from_str(&trimmed.to_ascii_uppercase())
        .map_err(|_| PhoneError::UnknownRegion(trimmed.to_string()))?;
    if short {
        LAST.set(Some((key, id)));
    }
    Ok(id)
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse(&s, None).map_err(serde::de::Error::custom)
    }
}

/// An email address with valid syntax and a domain that contains a dot; the domain is
/// lower-cased (the local part is kept as written: only the receiving server may fold it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email address is empty")]
    Empty,
    #[error("`{0}` is not a valid email address")]
    Syntax(String),
    #[error("`{0}` has no domain with a dot (like example.com)")]
    NoDotInDomain(String),
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        let parsed = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| EmailError::Syntax(trimmed.to_string()))?;
        let domain = parsed.domain();
        // Literal IP domains ([1.2.3.4]) and single-label hosts are not deliverable addresses here.
        if !domain.contains('.')
            || domain.starts_with('[')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(EmailError::NoDotInDomain(trimmed.to_string()));
        }
        Ok(Self(format!(
            "{}@{}",
            parsed.local_part(),
            domain.to_ascii_lowercase()
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EmailAddress::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The address a sender sends from or a recipient is reached at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Phone(E164),
    Email(EmailAddress),
}

impl Address {
    pub fn into_string(self) -> String {
        match self {
            Address::Phone(p) => p.0,
            Address::Email(e) => e.0,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Address::Phone(p) => p.as_str(),
            Address::Email(e) => e.as_str(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalize_to_e164() {
        assert_eq!(
            E164::parse("+1 (415) 555-2671", None).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            E164::parse("(415) 555-2671", Some("us")).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            E164::parse("030 901820", Some("DE")).unwrap().as_str(),
            "+4930901820"
        );
        assert_eq!(
            E164::parse("0044 20 7946 0958", None).unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn bad_phone_numbers_are_refused_with_a_reason() {
        assert_eq!(E164::parse("  ", None), Err(PhoneError::Empty));
        assert!(matches!(
            E164::parse("call me", None),
            Err(PhoneError::NotANumber(_))
        ));
        assert!(matches!(
            E164::parse("415 555 2671", None),
            Err(PhoneError::NoCountry(_))
        ));
        assert!(matches!(
            E164::parse("+1 555", None),
            Err(PhoneError::Invalid(_) | PhoneError::NotANumber(_))
        ));
        assert!(matches!(
            E164::parse("4155552671", Some("XX")),
            Err(PhoneError::UnknownRegion(_))
        ));
    }

    #[test]
    fn region_of_a_number() {
        let n = E164::parse("+442079460958", None).unwrap();
        assert_eq!(n.region().as_deref(), Some("GB"));
    }

    #[test]
    fn email_domain_is_lowercased_local_part_kept() {
        let e = EmailAddress::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Jane.Doe@example.com");
        assert_eq!(e.domain(), "example.com");
    }

    #[test]
    fn email_without_dot_in_domain_is_refused() {
        assert!(matches!(
            EmailAddress::parse("root@localhost"),
            Err(EmailError::NoDotInDomain(_))
        ));
        assert!(matches!(
            EmailAddress::parse("not an email"),
            Err(EmailError::Syntax(_))
        ));
        assert_eq!(EmailAddress::parse(""), Err(EmailError::Empty));
    }
}
