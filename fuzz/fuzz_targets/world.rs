//! A small chat world over a temporary sled store, shared by the targets that dispatch: alice
//! and bob in a group with one message, eve outside it with a group of her own, a session with
//! a known access token. Inputs name these with placeholders (`@u0`..`@u2` users, `@g0` `@g1`
//! groups, `@m0` the message, `@jwt` alice's login token), so the fuzzer reaches the handlers
//! behind the ids instead of stopping at "unknown group".
//!
//! The world lives across runs (opening sled per input would dominate the run time), so an
//! input can depend on what earlier inputs stored; a crash is replayed by the input together
//! with the fuzzer's log.

use parley::api::{Api, ApiOptions};
use parley::auth::Jwt;
use parley::chat::{Chat, ConnId, Frame};
use parley::clock::wall_ms;
use parley::config::Limits;
use parley::hasher::hash_password;
use parley::store::{SessionRecord, Store, UserRecord};
use tempfile::TempDir;
use uuid::Uuid;

pub const ACCESS_TOKEN: &str = "fuzz-access-token";
const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

pub struct World {
    pub chat: Chat,
    pub api: Api,
    pub limits: Limits,
    /// alice (creator of `@g0`), bob (member of `@g0`), eve (outside `@g0`, owner of `@g1`).
    pub users: [Uuid; 3],
    /// Every user's live connection, so deliveries reach an outbox.
    pub conns: [ConnId; 3],
    placeholders: Vec<(&'static str, String)>,
    _dir: TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let limits = Limits::default();
        let mut store = Store::open(&dir.path().join("db"), 16 * 1024 * 1024).expect("store");
        let wall = wall_ms();
        let hash = hash_password("0000");
        let users = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        for (id, name) in users.iter().zip(["alice", "bob", "eve"]) {
            store.insert_user(&UserRecord {
                id: *id,
                username: name.to_string(),
                email: format!("{name}@example.com"),
                password_hash: hash.clone(),
                created_at: wall,
                token_generation: 0,
                suspended: false,
                deleted: false,
            });
        }
        store.insert_session(&SessionRecord {
            id: Uuid::new_v4(),
            user_id: users[0],
            device_id: "0".into(),
            platform: "web".into(),
            model: "fuzz".into(),
            build: 1,
            name: None,
            created_at: wall,
            access_token: ACCESS_TOKEN.into(),
            last_seen: None,
            revoked: false,
        });
        let mut chat = Chat::open(store, limits.chat()).expect("chat");
        let conns = [0, 1, 2].map(|key| ConnId {
            key,
            serial: key as u64,
        });
        for (user, conn) in users.iter().zip(conns) {
            chat.connect(*user, conn);
        }
        let shared = chat
            .create_group(users[0], "shared", &[users[1].to_string()], wall)
            .expect("group");
        let own = chat
            .create_group(users[2], "own", &[], wall)
            .expect("group");
        let send = format!(r#"{{"method":40,"body":{{"group_id":"{shared}","data":"seed"}}}}"#);
        chat.handle_text(conns[0], users[0], &send, wall);
        let message = drain(&mut chat)
            .iter()
            .find_map(|event| {
                let value: serde_json::Value = serde_json::from_str(event).ok()?;
                (value["type"] == 21)
                    .then(|| value["body"]["message_id"].as_str().map(str::to_string))?
            })
            .expect("the seed message is acknowledged");
        let jwt = Jwt::new(SECRET);
        let token = jwt.issue(users[0], 0, wall / 1000);
        let api = Api::new(
            jwt,
            ApiOptions {
                public_url: None,
                fallback_host: "127.0.0.1:3000".into(),
                allowed_origins: vec!["https://ok.example".into()],
                echo_enabled: true,
                auth_rate_per_minute: 0,
                trusted_proxies: Default::default(),
                lookup_rate_per_minute: 0,
                max_sessions_per_user: 0,
                admin: None,
            },
        );
        let placeholders = vec![
            ("@u0", users[0].to_string()),
            ("@u1", users[1].to_string()),
            ("@u2", users[2].to_string()),
            ("@g0", shared.to_string()),
            ("@g1", own.to_string()),
            ("@m0", message),
            ("@jwt", token),
        ];
        World {
            chat,
            api,
            limits,
            users,
            conns,
            placeholders,
            _dir: dir,
        }
    }

    /// The input with every placeholder replaced by what it names.
    pub fn expand(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for (name, value) in &self.placeholders {
            out = replace(&out, name.as_bytes(), value.as_bytes());
        }
        out
    }

    /// Commits the store and empties the outbox, checking every event is a JSON object with a
    /// numeric `type` (what every client parses first).
    pub fn settle(&mut self) {
        self.settle_with(|_, _| {});
    }

    /// [`World::settle`], handing every frame to `each` (after its check) as the loop would
    /// release it to its connection.
    pub fn settle_with(&mut self, mut each: impl FnMut(ConnId, Frame)) {
        self.chat.commit().expect("commit");
        for (to, frame, _) in self.chat.outbox.drain() {
            if let Frame::Event(event) = &frame {
                let value: serde_json::Value = serde_json::from_str(event)
                    .unwrap_or_else(|e| panic!("an event that is not JSON ({e}): {event}"));
                assert!(
                    value["type"].is_u64(),
                    "an event without a numeric type: {event}"
                );
            }
            each(to, frame);
        }
    }
}

/// The text of every event in the outbox, which is emptied.
fn drain(chat: &mut Chat) -> Vec<String> {
    chat.outbox
        .drain()
        .filter_map(|(_, frame, _)| match frame {
            Frame::Event(text) => Some(text.to_string()),
            Frame::Http(_) => None,
        })
        .collect()
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}
