//! The secrets a broker on the network must not start with (issue 23, docs/security.md):
//!
//! - secrets left at their shipped value (`change-me` in `config.yaml` and the defaults): the
//!   JWT secret, the admin key, the BIGO account passwords, the push and callback keys. Anyone
//!   who has read our `config.yaml` knows them, so with them a broker signs tokens, accepts
//!   pushes and admin calls from anyone ([`shipped`]);
//! - an `auth.jwt_secret` or `admin.key` shorter than [`MIN_BYTES`]: HS256 wants a key of at
//!   least 256 bits (RFC 7518 3.2), since one token is enough to search for a short secret
//!   offline, and a short admin key can be guessed ([`short`]).
//!
//! Both run at start-up through [`crate::exposure::check`]: where every listener is on loopback
//! (a developer's machine) the keys are named in a warning; on any other address the broker
//! refuses to start. `server.allow_default_secrets: true` lets it start with shipped secrets
//! (the operator means it); nothing lets it start with short ones.

use std::net::IpAddr;

use crate::config::Config;

/// Whom the broker's listeners face (what [`crate::exposure`] refuses depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facing {
    /// Every listener is on a loopback address.
    Loopback,
    /// A listener is on another address: `key` (`server.host` or `server.internal.host`) binds `ip`.
    Network { key: &'static str, ip: IpAddr },
}

impl Facing {
    /// The first listener not on loopback: the public one (`server.host`), then the internal
    /// one (`server.internal.host`, which serves the admin API when set).
    pub fn of(public: IpAddr, internal: Option<IpAddr>) -> Self {
        if !public.is_loopback() {
            return Self::Network { key: "server.host", ip: public };
        }
        match internal {
            Some(ip) if !ip.is_loopback() => Self::Network { key: "server.internal.host", ip },
            _ => Self::Loopback,
        }
    }
}

/// The value every secret ships with.
pub const SHIPPED: &str = "change-me";

/// The shortest `auth.jwt_secret` and `admin.key` a broker on the network takes: 256 bits.
pub const MIN_BYTES: usize = 32;

/// The config keys whose secret still has the shipped value.
pub fn left_at_shipped(config: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: String, value: &str| {
        if value == SHIPPED {
            keys.push(key);
        }
    };
    check("auth.jwt_secret".into(), &config.auth.jwt_secret);
    check("admin.key".into(), &config.admin.key);
    for (i, account) in config.bigo.accounts.iter().enumerate() {
        check(format!("bigo.accounts[{i}].password (account {})", account.account), &account.password);
    }
    check("live.push_key".into(), &config.live.push_key);
    check("live.callback_key".into(), &config.live.callback_key);
    keys
}

/// `auth.jwt_secret` and `admin.key` when shorter than [`MIN_BYTES`], each with its length
/// (`auth.jwt_secret (17 bytes)`). A secret still at [`SHIPPED`] is left to [`shipped`].
pub fn too_short(config: &Config) -> Vec<String> {
    [("auth.jwt_secret", &config.auth.jwt_secret), ("admin.key", &config.admin.key)]
        .into_iter()
        .filter(|(_, value)| value.as_str() != SHIPPED && value.len() < MIN_BYTES)
        .map(|(key, value)| format!("{key} ({} bytes)", value.len()))
        .collect()
}

/// What start-up does about shipped secrets, facing `facing`: `Ok(Some(warning))` to log,
/// `Ok(None)` when there are none, `Err(why)` to refuse.
pub fn shipped(config: &Config, facing: Facing) -> Result<Option<String>, String> {
    let keys = left_at_shipped(config);
    if keys.is_empty() {
        return Ok(None);
    }
    let keys = keys.join(", ");
    let Facing::Network { key, ip } = facing else {
        return Ok(Some(format!(
            "secrets left at their shipped value {SHIPPED:?}: {keys}; fine on loopback, set them before listening elsewhere"
        )));
    };
    if config.server.allow_default_secrets {
        return Ok(Some(format!(
            "secrets left at their shipped value {SHIPPED:?} on {ip} (server.allow_default_secrets is on): {keys}; \
             anyone can sign client tokens, BIGO logins, admin calls and callbacks"
        )));
    }
    Err(format!(
        "refusing to start: {key} {ip} is not a loopback address and these secrets still have their shipped \
         value {SHIPPED:?}: {keys}. Set them, or set server.allow_default_secrets: true \
         (DANMU__SERVER__ALLOW_DEFAULT_SECRETS=true) to start anyway"
    ))
}

/// What start-up does about short secrets ([`too_short`]), facing `facing`: a warning on
/// loopback, a refusal elsewhere.
pub fn short(config: &Config, facing: Facing) -> Result<Option<String>, String> {
    let keys = too_short(config);
    if keys.is_empty() {
        return Ok(None);
    }
    let keys = keys.join(", ");
    match facing {
        Facing::Loopback => Ok(Some(format!(
            "secrets shorter than {MIN_BYTES} bytes: {keys}; fine on loopback, refused on any other address"
        ))),
        Facing::Network { key, ip } => Err(format!(
            "refusing to start: {key} {ip} is not a loopback address and these secrets are shorter than {MIN_BYTES} \
             bytes: {keys}. One client token is enough to search for a short auth.jwt_secret offline (HS256 wants \
             256 bits, RFC 7518 3.2), and a short admin.key can be guessed. Set each to {MIN_BYTES} bytes or more, \
             e.g. the output of `openssl rand -hex 32`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_KEY: [&str; 5] =
        ["auth.jwt_secret", "admin.key", "bigo.accounts[0].password", "live.push_key", "live.callback_key"];

    fn on(s: &str) -> Facing {
        Facing::of(s.parse().unwrap(), None)
    }

    #[test]
    fn the_defaults_and_the_shipped_config_yaml_leave_every_secret_at_change_me() {
        let shipped = crate::config::from_yaml(include_str!("../config.yaml")).unwrap();
        for config in [Config::default(), shipped] {
            let keys = left_at_shipped(&config).join(", ");
            for key in EVERY_KEY {
                assert!(keys.contains(key), "{key} not named: {keys}");
            }
        }
    }

    #[test]
    fn on_loopback_they_are_named_in_a_warning() {
        let warning = shipped(&Config::default(), on("127.0.0.1")).unwrap().unwrap();
        assert!(EVERY_KEY.iter().all(|k| warning.contains(k)), "{warning}");
        assert!(shipped(&Config::default(), on("::1")).unwrap().is_some());
    }

    #[test]
    fn elsewhere_they_stop_start_up_unless_allowed() {
        let refusal = shipped(&Config::default(), on("0.0.0.0")).unwrap_err();
        assert!(EVERY_KEY.iter().all(|k| refusal.contains(k)), "{refusal}");
        assert!(refusal.contains("server.host 0.0.0.0 is not a loopback address"), "{refusal}");
        assert!(refusal.contains("server.allow_default_secrets"), "{refusal}");
        let mut allowed = Config::default();
        allowed.server.allow_default_secrets = true;
        assert!(shipped(&allowed, on("10.0.0.7")).unwrap().is_some());
    }

    #[test]
    fn changed_secrets_say_nothing_and_one_left_is_the_only_one_named() {
        let mut config = Config::default();
        config.auth.jwt_secret = "s1".into();
        config.admin.key = "s2".into();
        config.bigo.accounts[0].password = "s3".into();
        config.live.push_key = "s4".into();
        assert_eq!(left_at_shipped(&config), vec!["live.callback_key"]);
        config.live.callback_key = "s5".into();
        assert_eq!(shipped(&config, on("0.0.0.0")), Ok(None));
    }

    #[test]
    fn a_secret_under_32_bytes_is_named_with_its_length_and_shipped_ones_are_left_to_their_check() {
        let mut config = Config::default();
        assert!(too_short(&config).is_empty(), "change-me is the shipped check's");
        config.auth.jwt_secret = "a".repeat(17);
        config.admin.key = "k".repeat(MIN_BYTES);
        assert_eq!(too_short(&config), vec!["auth.jwt_secret (17 bytes)"]);
        config.admin.key = "k".repeat(MIN_BYTES - 1);
        assert_eq!(too_short(&config), vec!["auth.jwt_secret (17 bytes)", "admin.key (31 bytes)"]);
        // Bytes, not characters: 11 three-byte characters are 33 bytes.
        config.auth.jwt_secret = "弹".repeat(11);
        assert_eq!(too_short(&config), vec!["admin.key (31 bytes)"]);
    }

    #[test]
    fn short_secrets_warn_on_loopback_and_stop_start_up_elsewhere() {
        let mut config = Config::default();
        config.auth.jwt_secret = "seventeen-bytes!!".into();
        let warning = short(&config, on("127.0.0.1")).unwrap().unwrap();
        assert!(warning.contains("auth.jwt_secret (17 bytes)"), "{warning}");
        let refusal = short(&config, on("0.0.0.0")).unwrap_err();
        assert!(refusal.contains("server.host 0.0.0.0 is not a loopback address"), "{refusal}");
        assert!(refusal.contains("auth.jwt_secret (17 bytes)") && refusal.contains("32 bytes"), "{refusal}");
        config.auth.jwt_secret = "x".repeat(32);
        assert_eq!(short(&config, on("0.0.0.0")), Ok(None));
    }
}
