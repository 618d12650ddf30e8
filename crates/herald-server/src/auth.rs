//! Bearer tokens: 256 random bits, stored only as a SHA-256 hash, each with a role.
//!
//! Every `/api/v1` route passes through [`require_token`]. Any method other than GET/HEAD needs
//! the admin role unless the route is listed in [`AGENT_WRITABLE`], so a new route is protected
//! by default rather than by remembering to protect it.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use herald_core::{ApiToken, Role};
use sha2::{Digest, Sha256};

/// Routes (method, path template under `/api/v1`) that agents may call with a method other
/// than GET: replying to a customer, and closing, reopening or assigning a conversation.
/// Everything else that changes data (campaigns, senders, outreaches, the opt-out list) is for
/// admins.
pub const AGENT_WRITABLE: &[(&str, &str)] = &[
    ("POST", "/conversations/{id}/messages"),
    ("PATCH", "/conversations/{id}"),
];

/// A token's prefix, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "hrld_";

/// A fresh token: the prefix and 64 hex characters (256 bits from a CSPRNG).
pub struct NewSecret {
    pub secret: String,
    pub hash_hex: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(<redacted>)")
    }
}

pub fn generate_token() -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash_hex = hash_token(&secret);
    NewSecret { secret, hash_hex }
}

/// SHA-256 is enough for 256-bit random secrets (no dictionary to guess from); it keeps the
/// per-request check cheap.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// Who is calling: put into request extensions by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller(pub ApiToken);

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "send `Authorization: Bearer <token>`; create a token with `herald token create`",
            )
        })?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    let token = state
        .store
        .use_token(&hash_token(secret), state.clock.now())
        .await?
        .ok_or_else(|| ApiError::unauthorized("this token is not known (revoked or mistyped)"))?;

    let method = req.method().clone();
    if token.role != Role::Admin && !matches!(method, Method::GET | Method::HEAD) {
        let path = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().trim_start_matches("/api/v1").to_string())
            .unwrap_or_default();
        let allowed = AGENT_WRITABLE
            .iter()
            .any(|(m, p)| *m == method.as_str() && *p == path);
        if !allowed {
            return Err(ApiError::forbidden(format!(
                "token `{}` has the {} role; only admins may {} {}",
                token.name,
                token.role,
                method,
                req.uri().path()
            )));
        }
    }
    tracing::Span::current().record("token", token.name.as_str());
    req.extensions_mut().insert(Caller(token));
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a.secret), a.hash_hex);
        assert_ne!(a.hash_hex, b.hash_hex);
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
