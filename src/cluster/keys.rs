//! Redis key names of the several-nodes mode (docs/protocol.md 7), in one place.
//!
//! Every key starts with `store.key_prefix`. All keys of one room share the hash tag
//! `{<channel>}` so that a room's operations (a Lua script touching its lease, input, events
//! and state) run on one Redis Cluster slot. A channel name is written into a key with `{`,
//! `}` and `%` percent-encoded, so that the tag is exactly the channel and a channel can never
//! forge another room's keys. The presence keys share the tag `{nodes}` (a node's renewal
//! writes its record and the node list in one pipeline, and the owners read every record in
//! one); a user's key and a node's inbox channel are tagged with the user or node id.

/// The key and channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string() }
    }

    /// The sorted set of node ids, scored by the Unix ms their presence expires at.
    pub fn nodes(&self) -> String {
        format!("{}{{nodes}}:live", self.prefix)
    }

    /// One node's presence hash (`public_url`, `clients`), expiring with the node.
    pub fn node(&self, node_id: &str) -> String {
        format!("{}{{nodes}}:node:{node_id}", self.prefix)
    }

    /// Set when another node took `node_id` for dead (and removed its members from their
    /// rooms): the node, when back, finds it and closes its client connections.
    pub fn node_dead(&self, node_id: &str) -> String {
        format!("{}{{nodes}}:dead:{node_id}", self.prefix)
    }

    /// The pub/sub channel of frames addressed to one node's sessions.
    pub fn node_channel(&self, node_id: &str) -> String {
        format!("{}node:{{{}}}:inbox", self.prefix, tag(node_id))
    }

    /// One user's connections on every node: sid -> `node|session|channel`.
    pub fn user(&self, user_id: &str) -> String {
        format!("{}user:{{{}}}", self.prefix, tag(user_id))
    }

    /// A key of the room `channel_name`: `what` is `lease`, `in`, `events`, `state`, `seen`,
    /// `members`, or a channel (`ch`, `wake`).
    pub fn room(&self, channel_name: &str, what: &str) -> String {
        format!("{}room:{{{}}}:{what}", self.prefix, tag(channel_name))
    }
}

/// `text` with `{`, `}` and `%` percent-encoded: a hash tag that is exactly this text.
pub fn tag(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster uses for `key` (the text between the first `{` and the
    /// first `}` after it, when not empty).
    fn cluster_tag(key: &str) -> &str {
        let Some(open) = key.find('{') else { return key };
        match key[open + 1..].find('}') {
            Some(0) | None => key,
            Some(close) => &key[open + 1..open + 1 + close],
        }
    }

    #[test]
    fn every_key_of_a_room_shares_one_hash_tag() {
        let k = Keys::new("danmu:");
        for channel in ["17", "call:a:b", "we{ir}d", "}{", "%7B"] {
            let tags: Vec<String> = ["lease", "term", "in", "own", "events", "state", "seen", "members"]
                .iter()
                .map(|w| cluster_tag(&k.room(channel, w)).to_string())
                .collect();
            assert!(tags.windows(2).all(|w| w[0] == w[1]), "{channel}: {tags:?}");
            assert_eq!(tags[0], tag(channel));
        }
    }

    #[test]
    fn channels_that_differ_never_share_keys() {
        let k = Keys::new("p:");
        assert_ne!(k.room("a}:in", "x"), k.room("a", "in}:x"));
        assert_ne!(k.room("%7B", "in"), k.room("{", "in"));
        assert_eq!(k.room("17", "lease"), "p:room:{17}:lease");
    }

    #[test]
    fn the_presence_keys_share_one_slot() {
        let k = Keys::new("p:");
        for id in ["node-a", "we{ir}d", "}"] {
            assert_eq!(cluster_tag(&k.node(id)), "nodes");
            assert_eq!(cluster_tag(&k.node_dead(id)), "nodes");
        }
        assert_eq!(cluster_tag(&k.nodes()), "nodes");
    }
}
