//! Signed one-click unsubscribe links for outreach emails.

/// One-click unsubscribe links for email (`List-Unsubscribe`): `{base}/unsubscribe/{key}?sig=…`,
/// signed with HMAC-SHA256 so a link cannot be forged for another recipient.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    base: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for UnsubscribeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeLinks")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl UnsubscribeLinks {
    /// `base` is Herald's public URL; `key` the signing secret.
    pub fn new(base: &str, key: &[u8]) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            key: key.to_vec(),
        }
    }

    /// The signature of an idempotency key.
    pub fn sign(&self, idempotency_key: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(idempotency_key.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Whether `sig` is the signature of `idempotency_key` (constant time).
    pub fn verify(&self, idempotency_key: &str, sig: &str) -> bool {
        let expected = self.sign(idempotency_key);
        expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    pub fn url(&self, idempotency_key: &str) -> String {
        format!(
            "{}/unsubscribe/{idempotency_key}?sig={}",
            self.base,
            self.sign(idempotency_key)
        )
    }
}
