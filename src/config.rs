//! Broker configuration: defaults, the TOML file and command-line flags, merged in that order.
//! Every flag has a config key of the same name (dashes become underscores); units come last in
//! names. Never consulted on the data path by string: shards copy what they need at start.

use crate::limits;
use crate::session::QueueFull;
use crate::shard::shared::SharePolicy;
use crate::store::{self, Durability};
use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;

/// ringmq: a thread-per-core MQTT 3.1 / 3.1.1 / 5.0 broker.
#[derive(Debug, Parser, Default)]
#[command(name = "ringmq", version, about)]
pub struct Cli {
    /// TOML configuration file; flags given on the command line override its keys.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// One plain MQTT listener on this address, added to any `[[listener]]` tables
    /// [default, with no listener configured: 127.0.0.1:1883 and [::1]:1883, loopback only].
    #[arg(long)]
    pub bind: Option<String>,
    /// Number of shards (pinned executor threads) [default: 0 = one per CPU].
    #[arg(long)]
    pub shards: Option<usize>,
    /// Pin shard i to CPU i (false lets the kernel schedule) [default: true].
    #[arg(long)]
    pub pin: Option<bool>,
    /// Close a connection that sends no valid CONNECT within this time [default: 2000].
    #[arg(long)]
    pub connect_timeout_ms: Option<u64>,
    /// An idle plain-TCP connection gives up its task and its read poll after between half of
    /// and all of this long without traffic, and gets them back when it has some; 0 = never
    /// [default: 10000].
    #[arg(long)]
    pub hibernate_idle_ms: Option<u64>,
    /// Largest packet accepted, in bytes [default: 1048576].
    #[arg(long)]
    pub packet_bytes_max: Option<usize>,
    /// Outgoing unacknowledged QoS 1/2 messages per session [default: 64].
    #[arg(long)]
    pub inflight_max: Option<u16>,
    /// Receive Maximum advertised to v5 clients (incoming QoS 1/2 window) [default: 1024].
    #[arg(long)]
    pub receive_maximum: Option<u16>,
    /// Messages queued per session past the inflight window [default: 1000].
    #[arg(long)]
    pub queued_messages_max: Option<usize>,
    /// Bytes (topic + payload) queued per session past the inflight window [default: 16777216].
    #[arg(long)]
    pub queued_bytes_max: Option<usize>,
    /// A connected subscriber's queue at its bounds: hold the publishers back (nothing
    /// acknowledged is lost) or drop and count [default: backpressure].
    #[arg(long, value_enum)]
    pub queue_full: Option<QueueFull>,
    /// Disconnect a subscriber past its queue bounds that makes no progress for this long,
    /// seconds; 0 = never [default: 30].
    #[arg(long)]
    pub slow_subscriber_timeout_s: Option<u64>,
    /// Queue QoS 0 messages for offline persistent sessions [default: false].
    #[arg(long)]
    pub queue_qos0_offline: Option<bool>,
    /// Bytes buffered for one connection's socket before deliveries queue instead [default: 1048576].
    #[arg(long)]
    pub out_buffer_bytes_max: Option<usize>,
    /// Longest topic name or filter, in bytes [default: 65535].
    #[arg(long)]
    pub topic_bytes_max: Option<usize>,
    /// Most levels in a topic name or filter [default: 128].
    #[arg(long)]
    pub topic_levels_max: Option<usize>,
    /// Subscriptions one session may hold [default: 10000].
    #[arg(long)]
    pub subscriptions_per_session_max: Option<usize>,
    /// Server Keep Alive imposed on v5 clients, seconds; 0 = accept the client's [default: 0].
    #[arg(long)]
    pub server_keep_alive_s: Option<u16>,
    /// Session expiry for v3 persistent sessions and v5 clients asking for more, seconds;
    /// 0 = never [default: 0].
    #[arg(long)]
    pub session_expiry_max_s: Option<u32>,
    /// Session expiry given to v3 persistent sessions (clean session 0), which cannot ask for
    /// one, seconds; 0 = never, as Mosquitto's default [default: 7200].
    #[arg(long)]
    pub persistent_session_expiry_s: Option<u32>,
    /// Maximum QoS granted to subscriptions and accepted from publishers [default: 2].
    #[arg(long)]
    pub maximum_qos: Option<u8>,
    /// Accept retained messages [default: true].
    #[arg(long)]
    pub retain_available: Option<bool>,
    /// Batches in flight per shard-to-shard channel [default: 1024].
    #[arg(long)]
    pub mesh_channel_capacity: Option<usize>,
    /// Listen backlog [default: 4096].
    #[arg(long)]
    pub listen_backlog: Option<u32>,
    /// Topic Alias Maximum offered to v5 clients (aliases they may send); 0 disables [default: 64].
    #[arg(long)]
    pub topic_alias_maximum: Option<u16>,
    /// Send topic aliases to v5 clients that accept them (saves bandwidth, costs a lookup per
    /// message) [default: false].
    #[arg(long)]
    pub topic_alias_outbound: Option<bool>,
    /// Response Information returned to v5 clients that request it; empty = none [default: ""].
    #[arg(long)]
    pub response_information: Option<String>,
    /// Redirect every client to this server (v5 Server Reference; v3 gets "server unavailable");
    /// empty = serve normally [default: ""].
    #[arg(long)]
    pub redirect_server_reference: Option<String>,
    /// With a redirect: 0x9D Server Moved (permanent) instead of 0x9C Use Another Server
    /// [default: false].
    #[arg(long)]
    pub redirect_permanent: Option<bool>,
    /// How a shared subscription group picks the member for each message [default: round-robin].
    #[arg(long, value_enum)]
    pub shared_subscription_policy: Option<SharePolicy>,
    /// A user for enhanced authentication (SCRAM-SHA-256), as NAME:PASSWORD; repeatable.
    /// Config file: `[[users]]` tables with `username` and `password` [default: none].
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub users: Vec<String>,
    /// Mosquitto-format password file (`user:$7$...`, `$6$`, `$argon2id$`; see `ringmq passwd`)
    /// [default: none].
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Mosquitto-format ACL file (`user`, `topic`, `pattern` lines) [default: none: no ACL].
    #[arg(long)]
    pub acl_file: Option<PathBuf>,
    /// Allow clients without a user name; unset = only on loopback listeners [default: unset].
    #[arg(long)]
    pub allow_anonymous: Option<bool>,
    /// Log level: error, warn, info, debug, trace [default: info].
    #[arg(long)]
    pub log_level: Option<String>,
    /// Connections open at once, broker-wide; 0 = only the open-files limit [default: 0].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Connections open at once from one source address; 0 = no cap [default: 0].
    #[arg(long)]
    pub max_connections_per_address: Option<u32>,
    /// New connections per second from one source address (bursts of as many); 0 = no cap
    /// [default: 0].
    #[arg(long)]
    pub max_connection_rate_per_address: Option<u32>,
    /// Refuse connections from this address or CIDR network; repeatable [default: none].
    #[arg(long = "ban", value_name = "ADDR_OR_CIDR")]
    pub banned: Vec<String>,
    /// PUBLISH packets per second one client may send (bursts of as many); over it a v5 client
    /// gets DISCONNECT 0x96; 0 = no cap [default: 0].
    #[arg(long)]
    pub max_publish_rate_per_client: Option<u32>,
    /// PUBLISH payload bytes per second one client may send; 0 = no cap [default: 0].
    #[arg(long)]
    pub max_publish_bytes_per_client: Option<u64>,
    /// Sessions (connected and offline) the broker keeps; a CONNECT that would create one more
    /// is refused (v5 0x97, v3 3) [default: 1000000].
    #[arg(long)]
    pub sessions_max: Option<usize>,
    /// Retained messages kept; a retained PUBLISH for a new topic past it is refused (v5
    /// PUBACK 0x97) [default: 1000000].
    #[arg(long)]
    pub retained_messages_max: Option<usize>,
    /// Bytes (topic + payload) of retained messages kept [default: 1073741824].
    #[arg(long)]
    pub retained_bytes_max: Option<usize>,
    /// Directory for the durable store (one `shard-N` subdirectory per shard); created if
    /// missing; it must be used with the same shard count [default: ./ringmq-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// What an acknowledgement waits for: none (memory only), process (the write completed:
    /// survives kill -9) or power (also fdatasync: survives power loss) [default: process].
    #[arg(long, value_enum)]
    pub durability: Option<Durability>,
    /// With durability = power, the least time between two commits (fdatasyncs) of a shard,
    /// microseconds [default: 1000].
    #[arg(long)]
    pub commit_interval_us: Option<u64>,
    /// Size of one log segment file, bytes (pre-allocated) [default: 67108864].
    #[arg(long)]
    pub store_segment_bytes: Option<u64>,
    /// Disk the store may use across all shards, bytes; past it new work that needs storage is
    /// refused; 0 = no cap [default: 8589934592].
    #[arg(long)]
    pub store_max_bytes: Option<u64>,
    /// Compact a shard's log once its oldest segment is this old, seconds; 0 = only on size
    /// [default: 86400].
    #[arg(long)]
    pub store_max_age_s: Option<u64>,
    /// Refresh the retained `$SYS/broker/...` tree every this many seconds; 0 = no `$SYS`
    /// tree [default: 10].
    #[arg(long)]
    pub sys_interval_s: Option<u64>,
    /// Publish client online/offline events on `$SYS/brokers/<node>/clients/<id>/...`
    /// [default: true].
    #[arg(long)]
    pub sys_events: Option<bool>,
    /// This broker's name in event topics [default: ringmq@<hostname>].
    #[arg(long)]
    pub node_name: Option<String>,
    /// The admin HTTP API, /metrics and the dashboard on this address (`[http] bind`)
    /// [default: 127.0.0.1:18083].
    #[arg(long)]
    pub http_bind: Option<String>,
    /// Serve the admin HTTP API (`[http] enabled`) [default: true].
    #[arg(long)]
    pub http_enabled: Option<bool>,
    /// Admin users of the HTTP API (`name:$argon2id$...` lines; see `ringmq admin add-user`)
    /// (`[http] admin_users_file`) [default: <data_dir>/admin-users].
    #[arg(long)]
    pub admin_users_file: Option<PathBuf>,
    /// A tool to run instead of the broker; none runs the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `ringmq SUBCOMMAND`: tools that run instead of the broker.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add, update or delete a user in a Mosquitto-format password file (like mosquitto_passwd).
    Passwd(crate::auth::passwd_cmd::PasswdArgs),
    /// Manage the admin users of the HTTP API (the file `[http] admin_users_file`).
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// A command line over the admin HTTP API of a running broker (like `emqx ctl`).
    Ctl(crate::admin::ctl::CtlArgs),
}

/// The merged configuration a broker runs with.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The `--bind` shorthand: one plain listener (see [`crate::listeners`]).
    pub bind: Option<String>,
    /// `[[listener]]` tables.
    pub listener: Vec<crate::listeners::ListenerConfig>,
    pub max_connections: usize,
    pub max_connections_per_address: u32,
    pub max_connection_rate_per_address: u32,
    pub banned: Vec<String>,
    pub max_publish_rate_per_client: u32,
    pub max_publish_bytes_per_client: u64,
    pub sessions_max: usize,
    pub retained_messages_max: usize,
    pub retained_bytes_max: usize,
    pub shards: usize,
    pub pin: bool,
    pub connect_timeout_ms: u64,
    pub hibernate_idle_ms: u64,
    pub packet_bytes_max: usize,
    pub inflight_max: u16,
    pub receive_maximum: u16,
    pub queued_messages_max: usize,
    pub queued_bytes_max: usize,
    pub queue_full: QueueFull,
    pub slow_subscriber_timeout_s: u64,
    pub queue_qos0_offline: bool,
    pub out_buffer_bytes_max: usize,
    pub topic_bytes_max: usize,
    pub topic_levels_max: usize,
    pub subscriptions_per_session_max: usize,
    pub server_keep_alive_s: u16,
    pub session_expiry_max_s: u32,
    pub persistent_session_expiry_s: u32,
    pub maximum_qos: u8,
    pub retain_available: bool,
    pub mesh_channel_capacity: usize,
    pub listen_backlog: u32,
    pub topic_alias_maximum: u16,
    pub topic_alias_outbound: bool,
    pub response_information: String,
    pub redirect_server_reference: String,
    pub redirect_permanent: bool,
    pub shared_subscription_policy: SharePolicy,
    /// Users for SCRAM-SHA-256 enhanced authentication (MQTT 5 AUTH).
    pub users: Vec<User>,
    /// Mosquitto-format password file; `None` = no password check (see `auth::security`).
    pub password_file: Option<PathBuf>,
    /// Mosquitto-format ACL file; `None` = everything allowed but `$SYS` writes.
    pub acl_file: Option<PathBuf>,
    /// Clients without a user name: `Some(true)` allowed, `Some(false)` refused, `None` allowed
    /// only on loopback listeners (Mosquitto 2's local-only default).
    pub allow_anonymous: Option<bool>,
    /// Successful password verifications cached per shard (users), so reconnects skip the
    /// key derivation.
    pub password_cache_users_max: usize,
    /// JWT on CONNECT (token as the password): exactly one key source.
    /// HMAC secret file (HS256/384/512), at least 32 bytes.
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key file (RSA: RS*/PS*; EC: ES256/ES384).
    pub jwt_public_key_file: Option<PathBuf>,
    /// JSON Web Key Set file (RSA and EC keys, picked by `kid`).
    pub jwt_jwks_file: Option<PathBuf>,
    /// Accepted `alg` values, e.g. ["RS256"]; empty = every algorithm of the key's family.
    pub jwt_algorithms: Vec<String>,
    /// Claim naming the user (e.g. "username" or "sub"); must equal a CONNECT user name if sent.
    pub jwt_username_claim: Option<String>,
    /// Claim carrying EMQX-form ACL rules (e.g. "acl").
    pub jwt_acl_claim: Option<String>,
    /// Required `aud` claim value, if any.
    pub jwt_audience: Option<String>,
    /// Refuse tokens without `exp`.
    pub jwt_require_exp: bool,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub jwt_leeway_s: u64,
    pub log_level: String,
    /// The durable store (see `store`): where, how durable, and its disk bounds.
    pub data_dir: PathBuf,
    pub durability: Durability,
    pub commit_interval_us: u64,
    pub store_segment_bytes: u64,
    pub store_max_bytes: u64,
    pub store_max_age_s: u64,
    /// `$SYS` (see `sys`): the tree's refresh interval (0 = off), the presence events, and
    /// the node name in their topics (empty: `ringmq@<hostname>`, filled in by `load`).
    pub sys_interval_s: u64,
    pub sys_events: bool,
    pub node_name: String,
    /// `[http]`: the admin API's listener.
    pub http: HttpConfig,
}

/// `[http]`: the admin HTTP API, /metrics and the dashboard (served off the shards, on the
/// control plane's HTTP thread).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    pub bind: String,
    /// `None`: `<data_dir>/admin-users`.
    pub admin_users_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            bind: crate::limits::HTTP_BIND_DEFAULT.into(),
            admin_users_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub password: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: None,
            listener: Vec::new(),
            max_connections: 0,
            max_connections_per_address: 0,
            max_connection_rate_per_address: 0,
            banned: Vec::new(),
            max_publish_rate_per_client: 0,
            max_publish_bytes_per_client: 0,
            sessions_max: limits::SESSIONS_MAX_DEFAULT,
            retained_messages_max: limits::RETAINED_MESSAGES_MAX_DEFAULT,
            retained_bytes_max: limits::RETAINED_BYTES_MAX_DEFAULT,
            shards: 0,
            pin: true,
            connect_timeout_ms: limits::CONNECT_TIMEOUT_MS_DEFAULT,
            hibernate_idle_ms: limits::HIBERNATE_IDLE_MS_DEFAULT,
            packet_bytes_max: limits::PACKET_BYTES_MAX_DEFAULT,
            inflight_max: limits::INFLIGHT_MAX_DEFAULT,
            receive_maximum: limits::RECEIVE_MAXIMUM_DEFAULT,
            queued_messages_max: limits::QUEUED_MESSAGES_MAX_DEFAULT,
            queued_bytes_max: limits::QUEUED_BYTES_MAX_DEFAULT,
            queue_full: QueueFull::Backpressure,
            slow_subscriber_timeout_s: limits::SLOW_SUBSCRIBER_TIMEOUT_S_DEFAULT,
            queue_qos0_offline: false,
            out_buffer_bytes_max: limits::OUT_BUFFER_BYTES_MAX_DEFAULT,
            topic_bytes_max: limits::TOPIC_BYTES_MAX_DEFAULT,
            topic_levels_max: limits::TOPIC_LEVELS_MAX_DEFAULT,
            subscriptions_per_session_max: limits::SUBSCRIPTIONS_PER_SESSION_MAX_DEFAULT,
            server_keep_alive_s: 0,
            session_expiry_max_s: 0,
            // EMQX's default session expiry: a v3 client id that never comes back must not
            // keep its session (and its stored queue) on disk for ever.
            persistent_session_expiry_s: 7200,
            maximum_qos: 2,
            retain_available: true,
            mesh_channel_capacity: limits::MESH_CHANNEL_CAPACITY_DEFAULT,
            listen_backlog: limits::LISTEN_BACKLOG_DEFAULT,
            topic_alias_maximum: limits::TOPIC_ALIAS_MAXIMUM_DEFAULT,
            topic_alias_outbound: false,
            response_information: String::new(),
            redirect_server_reference: String::new(),
            redirect_permanent: false,
            shared_subscription_policy: SharePolicy::RoundRobin,
            users: Vec::new(),
            password_file: None,
            acl_file: None,
            allow_anonymous: None,
            password_cache_users_max: crate::auth::password::VERIFY_CACHE_USERS_DEFAULT,
            jwt_secret_file: None,
            jwt_public_key_file: None,
            jwt_jwks_file: None,
            jwt_algorithms: Vec::new(),
            jwt_username_claim: None,
            jwt_acl_claim: None,
            jwt_audience: None,
            jwt_require_exp: true,
            jwt_leeway_s: 0,
            log_level: "info".into(),
            data_dir: PathBuf::from(store::DATA_DIR_DEFAULT),
            durability: Durability::Process,
            commit_interval_us: store::COMMIT_INTERVAL_US_DEFAULT,
            store_segment_bytes: store::SEGMENT_BYTES_DEFAULT,
            store_max_bytes: store::MAX_BYTES_DEFAULT,
            store_max_age_s: store::MAX_AGE_S_DEFAULT,
            sys_interval_s: crate::sys::INTERVAL_S_DEFAULT,
            sys_events: true,
            node_name: String::new(),
            http: HttpConfig::default(),
        }
    }
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

macro_rules! overlay {
    ($cfg:ident, $cli:ident, $($field:ident),*) => {
        $(if let Some(v) = $cli.$field.clone() { $cfg.$field = v; })*
    };
}

impl Config {
    /// Defaults, then the file named by `--config`, then the flags.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut cfg = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
                Config::from_toml(&text)
                    .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?
            }
            None => Config::default(),
        };
        if let Some(b) = &cli.bind {
            cfg.bind = Some(b.clone());
        }
        overlay!(
            cfg,
            cli,
            shards,
            pin,
            connect_timeout_ms,
            hibernate_idle_ms,
            packet_bytes_max,
            inflight_max,
            receive_maximum,
            queued_messages_max,
            queued_bytes_max,
            queue_full,
            slow_subscriber_timeout_s,
            queue_qos0_offline,
            out_buffer_bytes_max,
            topic_bytes_max,
            topic_levels_max,
            subscriptions_per_session_max,
            server_keep_alive_s,
            session_expiry_max_s,
            persistent_session_expiry_s,
            maximum_qos,
            retain_available,
            mesh_channel_capacity,
            listen_backlog,
            topic_alias_maximum,
            topic_alias_outbound,
            response_information,
            redirect_server_reference,
            redirect_permanent,
            shared_subscription_policy,
            log_level,
            max_connections,
            max_connections_per_address,
            max_connection_rate_per_address,
            max_publish_rate_per_client,
            max_publish_bytes_per_client,
            sessions_max,
            retained_messages_max,
            retained_bytes_max,
            data_dir,
            durability,
            commit_interval_us,
            store_segment_bytes,
            store_max_bytes,
            store_max_age_s,
            sys_interval_s,
            sys_events,
            node_name
        );
        if cfg.node_name.is_empty() {
            cfg.node_name = crate::sys::default_node_name();
        }
        cfg.banned.extend(cli.banned.iter().cloned());
        if let Some(p) = &cli.password_file {
            cfg.password_file = Some(p.clone());
        }
        if let Some(p) = &cli.acl_file {
            cfg.acl_file = Some(p.clone());
        }
        if let Some(a) = cli.allow_anonymous {
            cfg.allow_anonymous = Some(a);
        }
        if let Some(b) = &cli.http_bind {
            cfg.http.bind = b.clone();
        }
        if let Some(e) = cli.http_enabled {
            cfg.http.enabled = e;
        }
        if let Some(p) = &cli.admin_users_file {
            cfg.http.admin_users_file = Some(p.clone());
        }
        for u in &cli.users {
            let Some((username, password)) = u.split_once(':') else {
                return Err(ConfigError(format!("--user {u}: expected NAME:PASSWORD")));
            };
            cfg.users.push(User {
                username: username.into(),
                password: password.into(),
            });
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Reject values that would break an invariant elsewhere, with a message naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |k: &str, why: &str| Err(ConfigError(format!("{k}: {why}")));
        if self.packet_bytes_max < 16 || self.packet_bytes_max > limits::PACKET_BYTES_MAX_PROTOCOL {
            return bad("packet_bytes_max", "must be between 16 and 268435460");
        }
        if self.inflight_max == 0 {
            return bad("inflight_max", "must be at least 1");
        }
        if self.node_name.contains(['/', '+', '#']) {
            return bad("node_name", "is one topic level: no '/', '+' or '#'");
        }
        if self.queued_messages_max == 0 || self.queued_bytes_max == 0 {
            return bad("queued_messages_max/queued_bytes_max", "must be at least 1");
        }
        if self.receive_maximum == 0 {
            return bad("receive_maximum", "must be at least 1");
        }
        if self.maximum_qos > 2 {
            return bad("maximum_qos", "must be 0, 1 or 2");
        }
        if self.shards > limits::SHARDS_MAX {
            return bad("shards", "at most 64");
        }
        if self.topic_levels_max == 0 || self.topic_bytes_max == 0 {
            return bad("topic_levels_max/topic_bytes_max", "must be positive");
        }
        if self.mesh_channel_capacity == 0 {
            return bad("mesh_channel_capacity", "must be positive");
        }
        let jwt_sources = [
            &self.jwt_secret_file,
            &self.jwt_public_key_file,
            &self.jwt_jwks_file,
        ];
        if jwt_sources.iter().filter(|s| s.is_some()).count() > 1 {
            return bad(
                "jwt_secret_file/jwt_public_key_file/jwt_jwks_file",
                "set at most one",
            );
        }
        for a in &self.jwt_algorithms {
            if a.parse::<jsonwebtoken::Algorithm>().is_err() {
                return bad(
                    "jwt_algorithms",
                    "use HS256/384/512, RS256/384/512, PS256/384/512, ES256 or ES384",
                );
            }
        }
        if self.password_cache_users_max == 0 {
            return bad("password_cache_users_max", "must be at least 1");
        }
        if self.store_segment_bytes < store::SEGMENT_BYTES_MIN
            || !self.store_segment_bytes.is_multiple_of(4096)
        {
            return bad(
                "store_segment_bytes",
                "must be a multiple of 4096, at least 1 MiB",
            );
        }
        if self.store_max_bytes != 0 && self.store_max_bytes < 2 * self.store_segment_bytes {
            return bad("store_max_bytes", "must be 0 or at least two segments");
        }
        if self.commit_interval_us > 1_000_000 {
            return bad("commit_interval_us", "at most 1000000 (one second)");
        }
        if let Some(b) = &self.bind {
            if b.parse::<std::net::SocketAddr>().is_err() {
                return bad("bind", "must be an address:port such as 0.0.0.0:1883");
            }
        }
        for l in &self.listener {
            l.validate().map_err(ConfigError)?;
        }
        if self.http.enabled && self.http.bind.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "http.bind",
                "must be an address:port such as 127.0.0.1:18083",
            );
        }
        Ok(())
    }

    /// The listeners to open, and whether they are the loopback default.
    pub fn listeners(&self) -> (Vec<crate::listeners::ListenerConfig>, bool) {
        crate::listeners::effective(&self.listener, self.bind.as_deref())
    }

    /// The admin users file: `[http] admin_users_file`, or `admin-users` in the data directory.
    pub fn admin_users_file(&self) -> PathBuf {
        self.http
            .admin_users_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin-users"))
    }

    /// Shards to start: the configured count, or one per CPU available to this process.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            return self.shards;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(limits::SHARDS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../ringmq.example.toml");
        let cfg = Config::from_toml(text).expect("example config parses");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn flags_override_file() {
        let cli = Cli::parse_from(["ringmq", "--bind", "127.0.0.1:1999", "--shards", "2"]);
        let cfg = Config::load(&cli).expect("loads");
        assert_eq!(cfg.bind.as_deref(), Some("127.0.0.1:1999"));
        assert_eq!(cfg.shards, 2);
    }

    #[test]
    fn listener_tables_parse_with_mosquittos_names() {
        let cfg = Config::from_toml(
            r#"
            [[listener]]
            bind = "0.0.0.0:8883"
            protocol = "mqtts"
            certfile = "/etc/ringmq/server.pem"
            keyfile = "/etc/ringmq/server.key"
            cafile = "/etc/ringmq/ca.pem"
            require_certificate = true
            use_identity_as_username = true
            ktls = true

            [[listener]]
            bind = "127.0.0.1:1883"
            "#,
        )
        .expect("parses");
        assert!(cfg.validate().is_ok());
        let (l, default) = cfg.listeners();
        assert!(!default);
        assert_eq!(l.len(), 2);
        assert!(l[0].protocol.is_tls() && l[0].require_certificate);
        assert!(
            l[0].ktls && !l[1].ktls,
            "ktls is per listener, off by default"
        );
        assert!(Config::from_toml("[[listener]]\nbind = \"x\"\nport = 1").is_err());
    }

    #[test]
    fn auth_keys_parse_and_validate() {
        let cfg = Config::from_toml(
            "password_file = \"/etc/ringmq/pw\"\nacl_file = \"/etc/ringmq/acl\"\n\
             allow_anonymous = false\njwt_jwks_file = \"/etc/ringmq/jwks.json\"\n\
             jwt_algorithms = [\"RS256\"]\njwt_acl_claim = \"acl\"\n",
        )
        .expect("parses");
        assert_eq!(cfg.allow_anonymous, Some(false));
        assert_eq!(
            cfg.acl_file.as_deref(),
            Some(std::path::Path::new("/etc/ringmq/acl"))
        );
        assert!(cfg.validate().is_ok());
        let two = Config {
            jwt_secret_file: Some("/a".into()),
            jwt_jwks_file: Some("/b".into()),
            ..Config::default()
        };
        assert!(two.validate().is_err());
        let bad_alg = Config {
            jwt_algorithms: vec!["none".into()],
            ..Config::default()
        };
        assert!(bad_alg.validate().is_err());
        let cli = Cli::parse_from([
            "ringmq",
            "--password-file",
            "/p",
            "--allow-anonymous",
            "true",
        ]);
        let cfg = Config::load(&cli).expect("loads");
        assert_eq!(
            cfg.password_file.as_deref(),
            Some(std::path::Path::new("/p"))
        );
        assert_eq!(cfg.allow_anonymous, Some(true));
        assert_eq!(Config::default().allow_anonymous, None);
    }

    #[test]
    fn store_keys_have_defaults_flags_and_checks() {
        let cfg = Config::default();
        assert_eq!(cfg.data_dir, PathBuf::from("./ringmq-data"));
        assert_eq!(cfg.durability, Durability::Process);
        assert_eq!(cfg.commit_interval_us, 1000);
        let cli = Cli::parse_from([
            "ringmq",
            "--data-dir",
            "/var/lib/ringmq",
            "--durability",
            "power",
            "--store-segment-bytes",
            "8388608",
        ]);
        let cfg = Config::load(&cli).expect("loads");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/ringmq"));
        assert_eq!(cfg.durability, Durability::Power);
        assert_eq!(cfg.store_segment_bytes, 8 * 1024 * 1024);
        let toml = Config::from_toml("durability = \"none\"").expect("parses");
        assert_eq!(toml.durability, Durability::None);
        let bad = Config {
            store_segment_bytes: 1000,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_toml("no_such_key = 1").is_err());
        let cfg = Config {
            maximum_qos: 3,
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }
}
