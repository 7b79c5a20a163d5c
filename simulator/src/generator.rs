//! The danmu generator (pure): realistic `dataReception` data for one game session, a mix of
//! `msg`, `heart` and `gift` items (section 1.4) from many viewers, in Chinese with emoji
//! ([`Lang::Zh`], the default), or in plain Latin text ([`Lang::En`]) for machines without CJK
//! and emoji fonts. It makes the `data` text only; `actors::protocol::bigo_client` wraps and
//! signs it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::options::Lang;
use crate::Options;

/// The words of one language: names, messages, gifts.
pub struct Words {
    /// Viewer nicknames: the first viewers take these as they are ...
    nicknames: &'static [&'static str],
    /// ... the others are made of an adjective and a noun ...
    adjectives: &'static [&'static str],
    nouns: &'static [&'static str],
    /// What viewers say.
    messages: &'static [&'static str],
    /// (gift_id, gift_name, gift_level)
    gifts: &'static [(&'static str, &'static str, i64)],
}

impl Words {
    pub fn of(lang: Lang) -> &'static Words {
        match lang {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

const ZH: Words =
    Words { nicknames: NICKNAMES, adjectives: NICK_ADJECTIVES, nouns: NICK_NOUNS, messages: MESSAGES, gifts: GIFTS };

/// Plain ASCII: readable with any font.
const EN: Words = Words {
    nicknames: &[
        "Ming",
        "Foxy",
        "StarSea",
        "NoSugarTea",
        "NightOwl",
        "Popcorn",
        "Lucky7",
        "OldLee",
        "Mia",
        "Kevin",
        "Cloudy",
        "Ada",
    ],
    adjectives: &["Happy", "Quiet", "Brave", "Lost", "Sleepy", "Flying", "Lucky", "Swift", "Passing", "Sunny"],
    nouns: &[
        "Bear", "Lemon", "Bunny", "Star", "Fish", "Cat", "Deer", "Penguin", "Orange", "Kid", "Dumpling", "Dolphin",
    ],
    messages: &[
        "Great stream!",
        "666666",
        "Here we go!",
        "Nice move :)",
        "hahaha",
        "Big play incoming!!!",
        "First time here, followed <3",
        "Lovely song",
        "Go go go",
        "Good evening~",
        "So good!",
        "You can do it",
        "Love it",
        "I can't stop laughing",
        "What's the song?",
        "Checking in",
        "How did you do that?",
        "Too strong",
        "Anyone else here?",
        "GG",
        "hello from Berlin",
        "Stay calm, we can win",
        "Take me next round",
        "Wow",
        "Just got off work, made it",
        "Like like like",
    ],
    gifts: &[
        ("1", "Rose", 1),
        ("2", "Lollipop", 1),
        ("3", "Heart", 2),
        ("4", "Sports car", 3),
        ("5", "Rocket", 4),
        ("6", "Castle", 5),
    ],
};

/// Viewer nicknames: the first viewers take these as they are ...
const NICKNAMES: &[&str] = &[
    "小明",
    "阿狸🦊",
    "星辰大海",
    "奶茶不加糖",
    "月亮不睡我不睡",
    "吃瓜群众🍉",
    "Lucky七",
    "北京老李",
    "Mia",
    "熬夜冠军",
    "Kevin",
    "云朵☁️",
];
/// ... the others are made of an adjective and a noun (10 x 12 more distinct names) ...
const NICK_ADJECTIVES: &[&str] =
    &["快乐的", "爱笑的", "安静的", "勇敢的", "迷路的", "熬夜的", "会飞的", "不吃香菜的", "追风的", "路过的"];
const NICK_NOUNS: &[&str] =
    &["小熊🐻", "柠檬🍋", "兔子🐰", "星星⭐", "咸鱼", "猫咪🐱", "小鹿", "企鹅🐧", "橘子🍊", "少年", "汤圆", "海豚🐬"];

/// ... and past those, a name with a number, as on any big platform.
fn nickname(words: &Words, viewer: u32) -> String {
    let k = viewer as usize;
    if k < words.nicknames.len() {
        return words.nicknames[k].to_string();
    }
    let k = k - words.nicknames.len();
    let (a, n) = (words.adjectives.len(), words.nouns.len());
    let name = format!("{}{}", words.adjectives[k % a], words.nouns[(k / a) % n]);
    match k / (a * n) {
        0 => name,
        round => format!("{name}{round}"),
    }
}

/// What viewers say.
const MESSAGES: &[&str] = &[
    "主播好厉害！",
    "666666",
    "来了来了 🎉",
    "这波操作可以 👍",
    "哈哈哈哈😂",
    "前方高能⚡⚡⚡",
    "第一次来，关注了❤️",
    "主播唱得太好听了🎤",
    "冲冲冲 🚀",
    "晚上好～🌙",
    "好看！",
    "加油加油💪",
    "爱了爱了😍",
    "笑死我了🤣",
    "求BGM🎵",
    "弹幕护体🛡️",
    "打卡✅",
    "这是什么神仙操作",
    "太强了吧 🔥🔥",
    "有人一起吗？",
    "GG",
    "hello from Berlin 👋",
    "稳住，我们能赢",
    "下一把带我一个🙋",
    "好家伙",
    "awsl",
    "泪目了😭",
    "主播今天状态不错",
    "刚下班，赶上了🏃",
    "点赞点赞👍👍",
];

/// (gift_id, gift_name, gift_level)
const GIFTS: &[(&str, &str, i64)] =
    &[("1", "玫瑰", 1), ("2", "棒棒糖", 1), ("3", "爱心", 2), ("4", "跑车", 3), ("5", "火箭", 4), ("6", "城堡", 5)];
const GIFT_COUNTS: &[i64] = &[1, 1, 1, 1, 5, 10, 66, 99];

/// The fields every danmu item carries (section 1.4).
#[derive(Debug, Clone, Serialize)]
pub struct Sender {
    pub user: String,
    pub nick_name: String,
    pub user_img: String,
    /// When the viewer acted (ms), as a string, the way the platform sends it.
    pub ts: String,
    pub data_seq: String,
}

/// One danmu item as the platform sends it (`danmu-broker push` makes one by hand).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Item {
    Msg {
        #[serde(flatten)]
        from: Sender,
        content: String,
    },
    Heart {
        #[serde(flatten)]
        from: Sender,
        count: i64,
    },
    Gift {
        #[serde(flatten)]
        from: Sender,
        gift_id: String,
        gift_url: String,
        gift_level: i64,
        gift_count: i64,
        gift_name: String,
    },
}

/// One `danmu_data` entry: an anchor's items.
#[derive(Debug, Serialize)]
pub struct AnchorBatch<'a> {
    pub openid: &'a str,
    pub datas: Vec<Item>,
}

/// The `data` object of `dataReception` (section 1.4).
#[derive(Debug, Serialize)]
pub struct PushData<'a> {
    pub seqid: &'a str,
    pub timestamp: i64,
    pub game_id: &'a str,
    pub game_sess: &'a str,
    pub status: i64,
    pub danmu_data: Vec<AnchorBatch<'a>>,
}

impl PushData<'_> {
    /// The JSON text to sign and send as `data`.
    pub fn to_text(&self) -> String {
        // Plain structs of strings and integers always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Items per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub msg: u64,
    pub heart: u64,
    pub gift: u64,
}

impl ItemCounts {
    pub fn total(&self) -> u64 {
        self.msg + self.heart + self.gift
    }

    pub(crate) fn add(&mut self, other: ItemCounts) {
        self.msg += other.msg;
        self.heart += other.heart;
        self.gift += other.gift;
    }
}

/// One push, ready to send (and to send again: a retry carries the same `data`).
#[derive(Debug, Clone)]
pub struct Push {
    pub seqid: String,
    /// The `data` JSON text, exactly as signed.
    pub data: String,
    pub items: ItemCounts,
    pub status: i64,
}

/// Makes realistic pushes for one game session. `seqid` and `data_seq` start with a random
/// run id, so a second run on the same `game_sess` is not taken for duplicates of the first.
pub struct Generator {
    rng: StdRng,
    run_id: String,
    next_seqid: u64,
    next_data_seq: u64,
    game_sess: String,
    game_id: String,
    openid: String,
    viewers: u32,
    max_items: usize,
    /// Items of one push are spread over this many ms before it (the platform batches).
    spread_ms: i64,
    words: &'static Words,
}

impl Generator {
    pub fn new(opts: &Options, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let run_id = format!("{:08x}", rng.random::<u32>());
        Self {
            rng,
            run_id,
            next_seqid: 1,
            next_data_seq: 1,
            game_sess: opts.game_sess.clone(),
            game_id: opts.game_id.clone(),
            openid: opts.openid.clone(),
            viewers: opts.viewers.max(1),
            max_items: opts.items.max(1),
            spread_ms: ((1000.0 / opts.rate.max(0.001)) as i64).clamp(1, 1000),
            words: Words::of(opts.lang),
        }
    }

    /// A status 2 (game mounted) push of 1..=max_items items made up to now.
    pub fn push(&mut self, now: i64) -> Push {
        let (items, counts) = self.items(now);
        self.build(now, 2, items, counts)
    }

    /// The items of one push, 1..=max_items of them made up to `now` in `ts` order, and how
    /// many of each type: what [`Generator::push`] sends, for a caller that wraps them in
    /// pushes of its own (danmu-bench's W6, whose seqids and rooms are its own).
    pub fn items(&mut self, now: i64) -> (Vec<Item>, ItemCounts) {
        let n = self.rng.random_range(1..=self.max_items);
        let mut ts: Vec<i64> = (0..n).map(|_| now - self.rng.random_range(0..self.spread_ms)).collect();
        ts.sort_unstable();
        let mut counts = ItemCounts::default();
        let items: Vec<Item> = ts.into_iter().map(|t| self.item(t, &mut counts)).collect();
        (items, counts)
    }

    /// The last push: status 3, the live room closed, no items.
    pub fn closing_push(&mut self, now: i64) -> Push {
        self.build(now, 3, Vec::new(), ItemCounts::default())
    }

    fn build(&mut self, now: i64, status: i64, items: Vec<Item>, counts: ItemCounts) -> Push {
        let seqid = format!("{}-{}", self.run_id, self.next_seqid);
        self.next_seqid += 1;
        let data = PushData {
            seqid: &seqid,
            timestamp: now,
            game_id: &self.game_id,
            game_sess: &self.game_sess,
            status,
            danmu_data: vec![AnchorBatch { openid: &self.openid, datas: items }],
        };
        let data = data.to_text();
        Push { seqid, data, items: counts, status }
    }

    fn item(&mut self, ts: i64, counts: &mut ItemCounts) -> Item {
        let viewer = self.rng.random_range(0..self.viewers);
        let nick_name = nickname(self.words, viewer);
        let user = format!("v{}", 10_000 + viewer);
        let from = Sender {
            user_img: format!("https://img.example.com/avatar/{user}.png"),
            user,
            nick_name,
            ts: ts.to_string(),
            data_seq: format!("{}-{}", self.run_id, self.next_data_seq),
        };
        self.next_data_seq += 1;
        let roll = self.rng.random_range(0..100);
        if roll < 70 {
            counts.msg += 1;
            let content = self.words.messages.choose(&mut self.rng).copied().unwrap_or("666");
            Item::Msg { from, content: content.to_string() }
        } else if roll < 90 {
            counts.heart += 1;
            let count = *[1, 1, 1, 2, 3, 5, 10].choose(&mut self.rng).unwrap_or(&1);
            Item::Heart { from, count }
        } else {
            counts.gift += 1;
            let (id, name, level) = *self.words.gifts.choose(&mut self.rng).unwrap_or(&self.words.gifts[0]);
            let gift_count = *GIFT_COUNTS.choose(&mut self.rng).unwrap_or(&1);
            Item::Gift {
                from,
                gift_id: id.to_string(),
                gift_url: format!("https://img.example.com/gift/{id}.png"),
                gift_level: level,
                gift_count,
                gift_name: name.to_string(),
            }
        }
    }

    /// A yes/no with `pct` percent chance (the drop and retry knobs).
    pub fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.random_range(0.0..100.0) < pct
    }

    /// A random delay of 0..=max_ms.
    pub fn delay(&mut self, max_ms: u64) -> Duration {
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.random_range(0..=max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse as opts;
    use actors::protocol::bigo::DataReception;

    #[test]
    fn pushes_parse_as_data_reception_with_unique_seqids_and_data_seqs() {
        let o = opts(&["--game-sess", "g1", "--items", "4"]);
        let mut g = Generator::new(&o, 7);
        let mut seqids = std::collections::HashSet::new();
        let mut data_seqs = std::collections::HashSet::new();
        let mut counted = ItemCounts::default();
        for i in 0..200 {
            let push = g.push(1_700_000_000_000 + i * 200);
            let data: DataReception = serde_json::from_str(&push.data).unwrap();
            assert_eq!((data.game_sess.as_str(), data.game_id.as_str(), data.status), ("g1", "10000", Some(2)));
            assert!(seqids.insert(data.seqid.clone()));
            assert_eq!(data.seqid, push.seqid);
            let items = data.items();
            assert!((1..=4).contains(&items.len()));
            assert!(items.windows(2).all(|w| w[0].ts <= w[1].ts), "items of a push are in ts order");
            for item in &items {
                assert!(data_seqs.insert(item.data_seq.clone()));
                assert!(!item.user.is_empty() && !item.nick_name.is_empty());
                assert_eq!(item.openid, "anchor1");
            }
            counted.add(push.items);
        }
        assert_eq!(counted.total(), data_seqs.len() as u64);
        assert!(counted.msg > counted.heart && counted.heart > 0 && counted.gift > 0, "a mix: {counted:?}");
    }

    #[test]
    fn items_carry_the_fields_of_their_type() {
        let o = opts(&["--game-sess", "g1", "--items", "5"]);
        let mut g = Generator::new(&o, 11);
        let mut seen = (false, false, false);
        for _ in 0..100 {
            let data: serde_json::Value = serde_json::from_str(&g.push(1).data).unwrap();
            for item in data["danmu_data"][0]["datas"].as_array().unwrap() {
                assert!(item["ts"].is_string() && item["data_seq"].is_string());
                match item["type"].as_str().unwrap() {
                    "msg" => seen.0 |= item["content"].as_str().is_some_and(|c| !c.is_empty()),
                    "heart" => seen.1 |= item["count"].as_i64().is_some_and(|c| c >= 1),
                    "gift" => {
                        seen.2 |= ["gift_id", "gift_url", "gift_name"].iter().all(|k| item[*k].is_string())
                            && item["gift_count"].is_i64()
                            && item["gift_level"].is_i64()
                    }
                    other => panic!("unexpected type {other}"),
                }
            }
        }
        assert_eq!(seen, (true, true, true));
    }

    #[test]
    fn every_viewer_has_a_distinct_nickname() {
        for lang in [Lang::Zh, Lang::En] {
            let names: std::collections::HashSet<String> = (0..1000).map(|v| nickname(Words::of(lang), v)).collect();
            assert_eq!(names.len(), 1000, "{lang:?}");
        }
    }

    #[test]
    fn lang_en_speaks_plain_ascii_names_messages_and_gifts() {
        let o = opts(&["--game-sess", "g1", "--lang", "en", "--items", "4", "--viewers", "500"]);
        let mut g = Generator::new(&o, 5);
        for i in 0..200 {
            let push = g.push(1_000 + i);
            assert!(push.data.is_ascii(), "{}", push.data);
        }
        let zh = Generator::new(&opts(&["--game-sess", "g1", "--items", "4"]), 5).push(1).data;
        assert!(!zh.is_ascii(), "the default speaks Chinese: {zh}");
    }

    #[test]
    fn two_runs_on_one_game_sess_use_different_seqids() {
        let o = opts(&["--game-sess", "g1"]);
        let (a, b) = (Generator::new(&o, 1).push(5), Generator::new(&o, 2).push(5));
        assert_ne!(a.seqid, b.seqid);
    }

    #[test]
    fn closing_push_has_status_3_and_no_items() {
        let o = opts(&["--game-sess", "g1"]);
        let data: DataReception = serde_json::from_str(&Generator::new(&o, 3).closing_push(9).data).unwrap();
        assert_eq!(data.status, Some(3));
        assert!(data.items().is_empty());
    }
}
