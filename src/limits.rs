//! Every bound the broker enforces, in one place, with why. Config keys override the defaults;
//! the constants here are the defaults and the hard ceilings the specification imposes.

/// Largest packet the broker accepts (bytes, whole packet). 1 MiB like EMQX: big enough for
/// firmware-chunk payloads, small enough that a hostile client can't make a shard buffer a
/// quarter of a gigabyte (the protocol maximum).
pub const PACKET_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// The protocol's own ceiling: a four-byte remaining length plus five bytes of fixed header.
pub const PACKET_BYTES_MAX_PROTOCOL: usize = 268_435_455 + 5;

/// Outgoing QoS 1/2 messages unacknowledged per session (the client's Receive Maximum lowers
/// it further). Mosquitto uses 20, EMQX 32; a larger window keeps a fast subscriber busy on a
/// high-latency link, and each slot only holds an `Arc` to a shared message.
pub const INFLIGHT_MAX_DEFAULT: u16 = 64;

/// Receive Maximum the broker advertises to v5 clients: incoming QoS 2 exchanges it tracks at
/// once per session. Past it a v5 client is disconnected with 0x93.
pub const RECEIVE_MAXIMUM_DEFAULT: u16 = 1024;

/// Messages queued per session beyond the inflight window (offline, or a slow consumer).
/// Mosquitto's default is 1000. For a connected subscriber the bound is where back-pressure
/// starts (`queue_full = "backpressure"`): past it the publishers are held back, so the queue
/// overshoots only by what was already in flight. An offline session drops past it (counted).
pub const QUEUED_MESSAGES_MAX_DEFAULT: usize = 1000;

/// Encoded bytes waiting in one connection's output buffer before further deliveries go to the
/// session queue instead. Bounds memory per slow consumer independently of message count.
pub const OUT_BUFFER_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

/// Topic names and filters: bytes and levels. 65,535 bytes is the string limit of the protocol;
/// 128 levels keeps a match walk short whatever a client sends.
pub const TOPIC_BYTES_MAX_DEFAULT: usize = 65_535;
pub const TOPIC_LEVELS_MAX_DEFAULT: usize = 128;

/// Subscriptions one session may hold; each costs an automaton entry on every shard that sees
/// the filter.
pub const SUBSCRIPTIONS_PER_SESSION_MAX_DEFAULT: usize = 10_000;

/// Topic aliases a v5 client may define towards the broker (per connection). Each holds one
/// topic string; 64 covers the topics a device publishes to while bounding the table.
pub const TOPIC_ALIAS_MAXIMUM_DEFAULT: u16 = 64;

/// A connection must send a valid CONNECT within this time or be closed (slowloris guard).
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;

/// A connection idle half this long to this long sleeps without its task (`net::dormant`):
/// long enough that a client with traffic every few seconds never pays a wake-up.
pub const HIBERNATE_IDLE_MS_DEFAULT: u64 = 10_000;

/// The WebSocket opening handshake (an HTTP request): at most this many bytes, or 431. Browsers
/// send well under 2 KiB (cookies included, for a same-site page); nginx's default for a whole
/// request head is 8 KiB as well.
pub const WS_HANDSHAKE_BYTES_MAX: usize = 8 * 1024;
/// Default request path of WebSocket listeners (what MQTT.js, paho and Mosquitto use).
pub const WS_PATH_DEFAULT: &str = "/mqtt";

/// Batches in flight on one shard-to-shard channel before the sender waits (back-pressure).
pub const MESH_CHANNEL_CAPACITY_DEFAULT: usize = 1024;
/// Messages gathered into one cross-shard batch before it is sent without waiting for the end
/// of the current read.
pub const MESH_BATCH_MAX: usize = 256;

/// Bytes read from a socket per read call, into the shard's read chunk (`net::read_chunk`);
/// connections keep only what they received, in place (an idle connection holds no read
/// buffer). 64 KiB lets one recv take a whole burst of small PUBLISHes.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Listen backlog asked of the kernel (capped by net.core.somaxconn).
pub const LISTEN_BACKLOG_DEFAULT: u32 = 4096;

/// Shards: each one is a bit in the remote-interest mask of an automaton entry.
pub const SHARDS_MAX: usize = 64;

const _: () = assert!(PACKET_BYTES_MAX_DEFAULT <= PACKET_BYTES_MAX_PROTOCOL);
const _: () = assert!(MESH_BATCH_MAX <= 4096);
const _: () = assert!(INFLIGHT_MAX_DEFAULT as usize <= u16::MAX as usize);

/// glommio's registered I/O buffer pool per shard. It is pinned memory (RLIMIT_MEMLOCK, often
/// 8 MiB in total) and only file DMA uses it, not sockets; glommio's default of 10 MiB per
/// executor would exceed the limit with two shards.
pub const IO_MEMORY_BYTES: usize = 512 * 1024;
/// io_uring submission queue depth per ring.
pub const RING_DEPTH: usize = 256;

/// How long a SUBSCRIBE waits for every peer shard to confirm the new interest before the
/// SUBACK goes out anyway (logged): a wedged peer must not hang the subscriber forever.
pub const MESH_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// On SIGTERM/SIGINT: how long shards wait for their connections to write DISCONNECT and flush.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The shard's control task wakes this often to read commands from the control thread; every
/// `CONTROL_TICKS_PER_SECOND` ticks it reports statistics and runs the slow-subscriber watchdog.
pub const CONTROL_TICK: std::time::Duration = std::time::Duration::from_millis(100);
pub const CONTROL_TICKS_PER_SECOND: u64 = 10;

/// Bytes of queued messages (topic + payload) per session past the inflight window. With
/// `queued_messages_max` it bounds a session in count and bytes: 1,000 messages of 16 KiB fit,
/// while a stream of 1 MiB messages stops at 16.
pub const QUEUED_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// A connected subscriber past its queue bounds that makes no progress (no ack, nothing taken
/// by its socket) for this long is disconnected (v5 reason 0x97), so a stuck client cannot hold
/// publishers back forever. Below the 60 s keep alive most clients use, so a held publisher's
/// own pings still get through long before it would give up.
pub const SLOW_SUBSCRIBER_TIMEOUT_S_DEFAULT: u64 = 30;

/// Sessions kept (connected and offline). A v3 persistent session never expires, so without a
/// cap a client that reconnects under new ids grows memory forever; at ~3.5 kB per idle
/// session, a million is ~3.5 GB, within a server's means and far past the 20k connections a
/// default open-files limit allows.
pub const SESSIONS_MAX_DEFAULT: usize = 1_000_000;

/// Retained messages kept, and their bytes (topic + payload): every shard holds the retained
/// index, so the bytes bound is per shard too. A publisher that retains under endless new
/// topics is refused past them instead of filling memory.
pub const RETAINED_MESSAGES_MAX_DEFAULT: usize = 1_000_000;
pub const RETAINED_BYTES_MAX_DEFAULT: usize = 1 << 30;

/// The admin HTTP API's default address: loopback only (the API can kick clients and edit
/// users), EMQX's dashboard port.
pub const HTTP_BIND_DEFAULT: &str = "127.0.0.1:18083";

/// Admin HTTP API bounds. A request body (login, user edits) larger than this is refused 413:
/// nothing the API takes is bigger.
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024;
/// How long the API waits for every shard's answer before saying 503: shards look at commands
/// every `CONTROL_TICK`, so a healthy shard answers within about one tick.
pub const HTTP_SHARD_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Connections the HTTP server serves at once; more wait in the listen backlog.
pub const HTTP_CONNECTIONS_MAX: usize = 256;
/// A login token's lifetime, and the most tokens kept (the oldest goes first past it).
pub const HTTP_TOKEN_TTL_S: u64 = 3600;
pub const HTTP_TOKENS_MAX: usize = 10_000;
/// Failed logins from one address within `HTTP_LOGIN_WINDOW` before it must wait for the
/// window to pass (argon2 verification costs tens of milliseconds of CPU each: an unbounded
/// guesser would take the HTTP thread).
pub const HTTP_LOGIN_FAILURES_MAX: u32 = 5;
pub const HTTP_LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Addresses whose failures are remembered, at most.
pub const HTTP_LOGIN_ADDRESSES_MAX: usize = 10_000;
