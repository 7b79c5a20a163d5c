//! Secrets left at their shipped value (`change-me` in `config.yaml` and the defaults): the
//! JWT secret, the admin key, the BIGO account passwords, the push and callback keys. Anyone
//! who has read our `config.yaml` knows them, so with them a broker signs tokens, accepts
//! pushes and admin calls from anyone.
//!
//! [`check`] runs at start-up ([`crate::start_on`]): on a loopback address (a developer's
//! machine) the keys are named in a warning; on any other address the broker refuses to start
//! unless `server.allow_default_secrets: true` says the operator means it.

use std::net::IpAddr;

use crate::config::Config;

/// The value every secret ships with.
pub const SHIPPED: &str = "change-me";

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

/// What start-up does about shipped secrets when listening on `ip`: `Ok(Some(warning))`
/// to log, `Ok(None)` when there are none, `Err(why)` to refuse.
pub fn check(config: &Config, ip: IpAddr) -> Result<Option<String>, String> {
    let keys = left_at_shipped(config);
    if keys.is_empty() {
        return Ok(None);
    }
    let keys = keys.join(", ");
    if ip.is_loopback() {
        return Ok(Some(format!(
            "secrets left at their shipped value {SHIPPED:?}: {keys}; fine on loopback, set them before listening elsewhere"
        )));
    }
    if config.server.allow_default_secrets {
        return Ok(Some(format!(
            "secrets left at their shipped value {SHIPPED:?} on {ip} (server.allow_default_secrets is on): {keys}; \
             anyone can sign client tokens, BIGO logins, admin calls and callbacks"
        )));
    }
    Err(format!(
        "refusing to start: server.host {ip} is not a loopback address and these secrets still have their shipped \
         value {SHIPPED:?}: {keys}. Set them, or set server.allow_default_secrets: true \
         (DANMU__SERVER__ALLOW_DEFAULT_SECRETS=true) to start anyway"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_KEY: [&str; 5] =
        ["auth.jwt_secret", "admin.key", "bigo.accounts[0].password", "live.push_key", "live.callback_key"];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
        let warning = check(&Config::default(), ip("127.0.0.1")).unwrap().unwrap();
        assert!(EVERY_KEY.iter().all(|k| warning.contains(k)), "{warning}");
        assert!(check(&Config::default(), ip("::1")).unwrap().is_some());
    }

    #[test]
    fn elsewhere_they_stop_start_up_unless_allowed() {
        let refusal = check(&Config::default(), ip("0.0.0.0")).unwrap_err();
        assert!(EVERY_KEY.iter().all(|k| refusal.contains(k)), "{refusal}");
        assert!(refusal.contains("server.allow_default_secrets"), "{refusal}");
        let mut allowed = Config::default();
        allowed.server.allow_default_secrets = true;
        assert!(check(&allowed, ip("10.0.0.7")).unwrap().is_some());
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
        assert_eq!(check(&config, ip("0.0.0.0")), Ok(None));
    }
}
