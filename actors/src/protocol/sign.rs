//! Every md5 signature formula of docs/protocol.md in one place, as plain functions.
//!
//! `md5(x)` is the lower-case hex MD5 of the UTF-8 bytes of `x`. Comparisons are exact
//! (case-sensitive), as section 1.2 asks, and go through [`matches`], whose time does not
//! depend on where a guess goes wrong.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Lower-case hex MD5 of `input`.
pub fn md5_hex(input: &str) -> String {
    hex::encode(Md5::digest(input.as_bytes()))
}

/// Section 1.2: `platformLogin` sign.
pub fn bigo_login(password: &str, timestamp: &str, platform_abbr: &str, account: &str) -> String {
    md5_hex(&format!("password:{password}&tamp:{timestamp}&{platform_abbr}&account:{account}"))
}

/// Section 1.4: `dataReception` sign over the exact `data` text.
pub fn bigo_message(data: &str, access_token: &str, platform_abbr: &str) -> String {
    md5_hex(&format!("{data}&token:{access_token}&{platform_abbr}"))
}

/// Section 2.3: every client frame's sign.
pub fn client_frame(action: &str, online_token: &str, sid: &str, timestamp: &str) -> String {
    md5_hex(&format!("action={action}&online_token={online_token}&sid={sid}&timestamp={timestamp}"))
}

/// Section 3: the cloud's stream callback, `md5(callback_key + t)`.
pub fn stream_callback(callback_key: &str, t: &str) -> String {
    md5_hex(&format!("{callback_key}{t}"))
}

/// Section 3: push/play anti-leech secret, `md5(key + stream_id + txTime)`.
pub fn tx_secret(key: &str, stream_id: &str, tx_time_hex: &str) -> String {
    md5_hex(&format!("{key}{stream_id}{tx_time_hex}"))
}

/// Whether `given` (from the network) equals `expected` (a sign we computed, a key we hold),
/// in time that does not depend on the first differing byte: with `==`, answer times would
/// let a caller find a valid sign, or the admin key, a byte at a time. Only the length is
/// not hidden (a sign's is public; a key's says little when the key is long).
pub fn matches(given: impl AsRef<[u8]>, expected: impl AsRef<[u8]>) -> bool {
    given.as_ref().ct_eq(expected.as_ref()).into()
}

/// A fresh 128-bit random token as 32 lower-case hex chars (access_token, online_token).
pub fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_empty_string_is_the_known_digest() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn login_sign_follows_the_seed_example_layout() {
        let expected = md5_hex("password:213213&tamp:1693796233988&inke&account:bigoUser1");
        assert_eq!(bigo_login("213213", "1693796233988", "inke", "bigoUser1"), expected);
    }

    #[test]
    fn client_sign_joins_fields_in_protocol_order() {
        let expected = md5_hex("action=ping&online_token=t&sid=s&timestamp=1");
        assert_eq!(client_frame("ping", "t", "s", "1"), expected);
    }

    #[test]
    fn matches_only_equal_bytes() {
        let sign = client_frame("ping", "t", "s", "1");
        assert!(matches(&sign, &sign));
        assert!(!matches(sign.to_uppercase(), &sign));
        assert!(!matches(&sign[..31], &sign));
        assert!(!matches("", &sign));
        assert!(matches(b"key", "key"));
    }

    #[test]
    fn random_tokens_are_32_hex_chars_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
