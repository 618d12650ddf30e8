//! BCP 47 language tags (`en-US`, `es`, `fr-CA`, `zh-Hant-TW`), in canonical case.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Language(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a BCP 47 language tag (examples: en, en-US, fr-CA, zh-Hant-TW)")]
pub struct LanguageError(pub String);

impl Language {
    /// Parses `language[-script][-region][-variant...]`; `_` is accepted for `-` as people write
    /// `en_US`. Case is made canonical: `EN-us` -> `en-US`.
    pub fn parse(input: &str) -> Result<Self, LanguageError> {
        let err = || LanguageError(input.trim().to_string());
        let raw = input.trim().replace('_', "-");
        let mut parts = raw.split('-');
        let lang = parts.next().ok_or_else(err)?;
        if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(err());
        }
        let mut out = lang.to_ascii_lowercase();
        let mut stage = 0; // 0: script may follow, 1: region may follow, 2: only variants
        for part in parts {
            let alpha = part.chars().all(|c| c.is_ascii_alphabetic());
            let digits = part.chars().all(|c| c.is_ascii_digit());
            let alnum = part.chars().all(|c| c.is_ascii_alphanumeric());
            out.push('-');
            if stage == 0 && part.len() == 4 && alpha {
                let mut chars = part.chars();
                if let Some(first) = chars.next() {
                    out.push(first.to_ascii_uppercase());
                }
                out.push_str(&chars.as_str().to_ascii_lowercase());
                stage = 1;
            } else if stage <= 1 && ((part.len() == 2 && alpha) || (part.len() == 3 && digits)) {
                out.push_str(&part.to_ascii_uppercase());
                stage = 2;
            } else if alnum
                && ((5..=8).contains(&part.len())
                    || (part.len() == 4 && part.starts_with(|c: char| c.is_ascii_digit())))
            {
                out.push_str(&part.to_ascii_lowercase());
                stage = 2;
            } else {
                return Err(err());
            }
        }
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag: `en` for `en-US`.
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Language::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_case() {
        for (input, want) in [
            ("en", "en"),
            ("EN-us", "en-US"),
            ("fr_ca", "fr-CA"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("de-DE-1996", "de-DE-1996"),
        ] {
            assert_eq!(Language::parse(input).unwrap().as_str(), want, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_tag() {
        for input in ["", "english", "e", "en-", "en-US-x", "en US", "12"] {
            assert!(Language::parse(input).is_err(), "{input}");
        }
    }

    #[test]
    fn primary_subtag() {
        assert_eq!(Language::parse("pt-BR").unwrap().primary(), "pt");
    }
}
