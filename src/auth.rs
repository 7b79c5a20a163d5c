//! Client identity: the HS256 JWT of docs/protocol.md 2.1, issued by the app's backend (or by
//! `danmu-broker token` / `/demo/token` for trying things out), checked at every HTTP entry.

use actors::protocol::client::Profile;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_small_url: Option<String>,
}

impl Claims {
    pub fn profile(self) -> Profile {
        Profile {
            nickname: self.nickname.unwrap_or_else(|| self.sub.clone()),
            user_id: self.sub,
            sex: self.sex.unwrap_or(Value::from(0)),
            avatar_url: self.avatar_url.unwrap_or_default(),
            avatar_small_url: self.avatar_small_url.unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("token invalid or expired")]
    Invalid,
    #[error("token does not belong to user_id")]
    WrongUser,
}

/// Checks `token` and that it names `user_id` (when given); answers the claims.
pub fn verify(secret: &str, token: &str, user_id: Option<&str>) -> Result<Claims, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    let data = decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .map_err(|_| AuthError::Invalid)?;
    if user_id.is_some_and(|u| u != data.claims.sub) {
        return Err(AuthError::WrongUser);
    }
    Ok(data.claims)
}

/// Signs a client token (for `danmu-broker token`, `/demo/token` and tests).
pub fn issue(secret: &str, claims: &Claims) -> String {
    // HS256 with a byte secret cannot fail to encode these plain claims.
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap_or_default()
}

/// Claims for `user_id` valid for `ttl_s` seconds from now.
pub fn claims_for(user_id: &str, nickname: Option<String>, ttl_s: u64) -> Claims {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Claims {
        sub: user_id.to_string(),
        exp: now.saturating_add(ttl_s),
        nickname,
        sex: None,
        avatar_url: None,
        avatar_small_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_for_its_user_only() {
        let token = issue("s", &claims_for("u1", Some("Ann".into()), 60));
        assert_eq!(verify("s", &token, Some("u1")).map(|c| c.profile().nickname), Ok("Ann".to_string()));
        assert_eq!(verify("s", &token, Some("u2")).err(), Some(AuthError::WrongUser));
        assert_eq!(verify("other", &token, None).err(), Some(AuthError::Invalid));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let mut claims = claims_for("u1", None, 0);
        claims.exp -= 3600;
        assert_eq!(verify("s", &issue("s", &claims), None).err(), Some(AuthError::Invalid));
    }
}
