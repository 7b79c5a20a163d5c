//! The stream URLs of docs/protocol.md 3, built only by the server (seed 002: never let the app
//! assemble play URLs): the signed push URL handed to a room's owner and the play URLs of every
//! room answer. Pure functions of the `live` config, the `stream_id` and the time.
//!
//! Anti-leech signature (Tencent "live code" mode): `txTime` is the upper-case hex Unix time
//! (seconds) at which the URL expires, `txSecret = md5(key + stream_id + txTime)`; the
//! `stream_id` in the formula never carries the `.flv`/`.m3u8` extension. Play URLs are
//! signed, with `live.play_key`, only when it is set, and expire `live.push_url_ttl_s` from now
//! like the push URL (the contract names no separate play TTL).

use actors::protocol::sign;
use serde::Serialize;

use crate::config::LiveConfig;

/// `txTime`: upper-case hex of the Unix time (seconds) `expires_at_s`.
pub fn tx_time(expires_at_s: u64) -> String {
    format!("{expires_at_s:X}")
}

/// `rtmp://{push_domain}/live/{stream_id}?bizid=..&txSecret=..&txTime=..`, valid until
/// `now_s + live.push_url_ttl_s`.
pub fn push_url(live: &LiveConfig, stream_id: &str, now_s: u64) -> String {
    let tx_time = tx_time(now_s.saturating_add(live.push_url_ttl_s));
    let tx_secret = sign::tx_secret(&live.push_key, stream_id, &tx_time);
    format!("rtmp://{}/live/{stream_id}?bizid={}&txSecret={tx_secret}&txTime={tx_time}", live.push_domain, live.bizid)
}

/// The three play URLs of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PlayUrls {
    /// `rtmp://{play_domain}/live/{stream_id}`
    pub rtmp: String,
    /// `http://{play_domain}/live/{stream_id}.flv`
    pub flv: String,
    /// `http://{play_domain}/live/{stream_id}.m3u8`
    pub hls: String,
}

pub fn play_urls(live: &LiveConfig, stream_id: &str, now_s: u64) -> PlayUrls {
    let query = if live.play_key.is_empty() {
        String::new()
    } else {
        let tx_time = tx_time(now_s.saturating_add(live.push_url_ttl_s));
        format!("?txSecret={}&txTime={tx_time}", sign::tx_secret(&live.play_key, stream_id, &tx_time))
    };
    let domain = &live.play_domain;
    PlayUrls {
        rtmp: format!("rtmp://{domain}/live/{stream_id}{query}"),
        flv: format!("http://{domain}/live/{stream_id}.flv{query}"),
        hls: format!("http://{domain}/live/{stream_id}.m3u8{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_time_is_upper_case_hex_seconds() {
        // The seed's example: 5867D600 is 2017-01-01 00:00:00 (UTC+8).
        assert_eq!(tx_time(1_483_200_000), "5867D600");
    }

    #[test]
    fn push_url_carries_bizid_and_a_secret_over_key_stream_and_time() {
        let live = LiveConfig { push_key: "k".into(), push_url_ttl_s: 100, ..LiveConfig::default() };
        let url = push_url(&live, "8888_1", 1000);
        let tx_time = tx_time(1100);
        let secret = sign::md5_hex(&format!("k8888_1{tx_time}"));
        assert_eq!(
            url,
            format!("rtmp://8888.livepush.myqcloud.com/live/8888_1?bizid=8888&txSecret={secret}&txTime={tx_time}")
        );
    }

    #[test]
    fn play_urls_are_plain_without_a_play_key_and_signed_with_one() {
        let mut live = LiveConfig::default();
        let plain = play_urls(&live, "8888_7", 0);
        assert_eq!(plain.flv, "http://8888.liveplay.myqcloud.com/live/8888_7.flv");
        assert_eq!(plain.hls, "http://8888.liveplay.myqcloud.com/live/8888_7.m3u8");
        assert_eq!(plain.rtmp, "rtmp://8888.liveplay.myqcloud.com/live/8888_7");
        live.play_key = "pk".into();
        let signed = play_urls(&live, "8888_7", 0);
        let tx_time = tx_time(live.push_url_ttl_s);
        let secret = sign::md5_hex(&format!("pk8888_7{tx_time}"));
        assert!(signed.hls.ends_with(&format!(".m3u8?txSecret={secret}&txTime={tx_time}")), "{}", signed.hls);
    }
}
