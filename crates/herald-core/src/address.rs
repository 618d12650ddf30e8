//! Contact addresses: E.164 phone numbers and email addresses, parsed once and valid ever after.

use crate::phone::ReadError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
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
    /// Parses a number as a person might write it, as Google's libphonenumber reads it: a number
    /// written with `+` (or with the international dialling prefix of `default_region`, such as
    /// `011` in the US or `00` in Germany) is read with its own country's rules; a number written
    /// nationally is read in `default_region` (ISO 3166 alpha-2), if one is given. Without a
    /// default region, a leading `00` is also read as `+`.
    ///
    /// Common shapes (ASCII digits, spaces, `-`, `.`, `(`, `)`, a leading `+`) take a fast way in;
    /// everything else (Unicode digits, `tel:` URIs, extensions, vanity letters) the general one.
    /// Both end in the same reading (`phone.rs`).
    pub fn parse(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let (trimmed, region, text) = prepare(input, default_region)?;
        let read = match crate::phone::fast(&text, region) {
            Some(read) => read,
            None => crate::phone::general(&text, region),
        };
        read.map(Self).map_err(|e| e.into_phone_error(trimmed))
    }

    /// [`E164::parse`] through the general way in only: what a number outside the fast path's
    /// alphabet goes through. For the vector tests and the benchmark.
    #[doc(hidden)]
    pub fn parse_general(input: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let (trimmed, region, text) = prepare(input, default_region)?;
        crate::phone::general(&text, region)
            .map(Self)
            .map_err(|e| e.into_phone_error(trimmed))
    }

    /// Only the fast way in of [`E164::parse`]: `None` where it would take the general one.
    #[doc(hidden)]
    pub fn parse_fast_only(
        input: &str,
        default_region: Option<&str>,
    ) -> Option<Result<Self, PhoneError>> {
        let (trimmed, region, text) = match prepare(input, default_region) {
            Ok(prepared) => prepared,
            Err(e) => return Some(Err(e)),
        };
        let fast = crate::phone::fast(&text, region)?;
        Some(fast.map(Self).map_err(|e| e.into_phone_error(trimmed)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166 region the number belongs to (`None` for non-geographic numbers such as
    /// +800), as libphonenumber's `getRegionCodeForNumber` tells it.
    pub fn region(&self) -> Option<String> {
        crate::phone::region_of(&self.0)
            .filter(|id| *id != "001")
            .map(str::to_owned)
    }
}

/// The checks and rewriting `E164::parse` does before reading: the trimmed input, the default
/// region (upper case), and the text to read.
fn prepare<'a>(
    input: &'a str,
    default_region: Option<&str>,
) -> Result<(&'a str, Option<&'static str>, Cow<'a, str>), PhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let region = match default_region {
        Some(code) => Some(parse_region(code)?),
        None => None,
    };
    // `00` is the international prefix in most of the world; without a region to tell us,
    // read it as `+` (libphonenumber would refuse the number for want of a country).
    let text = match trimmed.strip_prefix("00") {
        Some(rest) if region.is_none() => Cow::Owned(format!("+{rest}")),
        _ => Cow::Borrowed(trimmed),
    };
    Ok((trimmed, region, text))
}

impl ReadError {
    fn into_phone_error(self, trimmed: &str) -> PhoneError {
        match self {
            ReadError::NotANumber => PhoneError::NotANumber(trimmed.to_string()),
            ReadError::NoCountry => PhoneError::NoCountry(trimmed.to_string()),
            ReadError::Invalid => PhoneError::Invalid(trimmed.to_string()),
        }
    }
}

/// The national (trunk) prefix of a region (`US` → `1`, `DE` → `0`), if it has one.
pub fn national_prefix(region: &str) -> Option<&'static str> {
    crate::phone::national_prefix(parse_region(region).ok()?)
}

/// The country calling code an E.164 number starts with (`+4930901820` → `49`).
pub fn country_code(e164: &str) -> Option<String> {
    crate::phone::country_code_of(e164).map(|code| code.to_string())
}

/// Every region a default region may name (ISO 3166 alpha-2, as libphonenumber knows them) with
/// its country calling code, sorted by region code: `("DE", 49)`.
pub fn phone_regions() -> Vec<(&'static str, u16)> {
    crate::phone::regions()
}

/// Parses an ISO 3166 alpha-2 region code known to libphonenumber (any case); gives it as
/// libphonenumber spells it (upper case).
pub fn parse_region(code: &str) -> Result<&'static str, PhoneError> {
    let trimmed = code.trim();
    let mut upper = [0u8; 2];
    if trimmed.len() == 2 {
        for (u, b) in upper.iter_mut().zip(trimmed.bytes()) {
            *u = b.to_ascii_uppercase();
        }
        if let Ok(id) = std::str::from_utf8(&upper)
            && let Some(known) = crate::phone::known_region(id)
        {
            return Ok(known);
        }
    }
    Err(PhoneError::UnknownRegion(trimmed.to_string()))
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
