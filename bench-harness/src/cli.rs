//! Command-line definitions (clap derive). Flags shared by every traffic scenario live in
//! [`BrokerArgs`], [`LoadArgs`] and [`OutputArgs`]; each scenario adds only its shape.

use crate::clock::parse_duration;
use clap::{Args, Parser, Subcommand};
use ringmq_codec::Protocol;
use std::path::PathBuf;
use std::time::Duration;

/// Load generator for MQTT brokers: fan-in, fan-out, point-to-point, large wildcard
/// subscription sets and idle connections, with end-to-end latency (HdrHistogram,
/// coordinated-omission-free in --rate mode) and exact loss / duplicate / reorder accounting.
#[derive(Debug, Parser)]
#[command(name = "ringmq-bench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// P publishers on distinct topics → S subscribers on one wildcard filter covering them.
    Fanin(FaninArgs),
    /// One topic, many subscribers (P publishers, default 1).
    Fanout(FanoutArgs),
    /// N publisher/subscriber pairs on distinct topics (point to point).
    Pairs(PairsArgs),
    /// Load a large subscription set (exact, + and # filters), then send traffic hitting a
    /// known fraction of it.
    Wildcard(WildcardArgs),
    /// Open C idle connections; report success, rate, and broker memory per connection.
    Conns(ConnsArgs),
    /// Healthy publisher→subscriber pairs beside a topic whose subscriber stops reading its
    /// socket after SUBACK, fed by publishers with deep windows: does the broker isolate it?
    Stalled(StalledArgs),
    /// Compare .hgrm files: side-by-side percentile table and a latency-by-percentile SVG.
    Compare(CompareArgs),
    /// Medians and ratios over many runs' JSON lines, grouped by label.
    Summarize(SummarizeArgs),
    /// Connect once (CONNECT/CONNACK) and exit 0 on success; `--wait` retries.
    Probe(ProbeArgs),
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "3.1.1" | "311" | "4" | "v3" | "3" => Ok(Protocol::V311),
        "5" | "5.0" | "v5" => Ok(Protocol::V5),
        _ => Err(format!("unknown protocol {s:?}: use 3.1.1 or 5")),
    }
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Where the broker is and how to log in.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, short = 'p', default_value_t = 1883)]
    pub port: u16,
    /// MQTT protocol version: 3.1.1 or 5.
    #[arg(long, short = 'V', default_value = "3.1.1", value_parser = parse_protocol)]
    pub protocol: Protocol,
    /// Username sent in CONNECT (all clients).
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Password sent in CONNECT (all clients).
    #[arg(long, short = 'P')]
    pub password: Option<String>,
    /// Keep alive in seconds (PINGREQ is sent after half of it without traffic).
    #[arg(long, default_value_t = 60)]
    pub keepalive: u16,
    /// Persistent sessions (clean session 0; v5: Session Expiry Interval 300 s), so a broker
    /// with a durable store keeps the subscribers' QoS 1/2 messages on disk.
    #[arg(long)]
    pub persistent: bool,
    /// Broker process id: adds its CPU use and RSS to the report (and memory per connection
    /// for `conns`).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Connect over TLS (mqtts). Needs --tls-ca. Every connection makes a full handshake (no
    /// session resumption); connect latency then includes the handshake.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate(s), PEM, that the broker's certificate must chain to; implies --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Name checked against the broker's certificate (DNS name or IP address) [default: --host].
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// MQTT over WebSocket: every connection makes the RFC 6455 upgrade (subprotocol mqtt) on
    /// --ws-path, then sends its packets in masked binary frames (plain TCP only, no wss).
    #[arg(long)]
    pub ws: bool,
    /// Request path of the WebSocket upgrade (with --ws).
    #[arg(long, value_name = "PATH", default_value = "/mqtt")]
    pub ws_path: String,
}

/// Traffic shape and run timing shared by the traffic scenarios.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// QoS of publishes and subscriptions (0, 1, 2).
    #[arg(long, short = 'q', default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (min 16: sequence number + timestamp).
    #[arg(long, short = 's', default_value_t = 64)]
    pub payload_bytes: usize,
    /// Measured duration (after warm-up), e.g. 10, 30s, 2m.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_dur)]
    pub duration: Duration,
    /// Warm-up before measuring (traffic flows, nothing is recorded).
    #[arg(long, short = 'w', default_value = "2s", value_parser = parse_dur)]
    pub warmup: Duration,
    /// Longest wait after publishers stop for outstanding deliveries and acks.
    #[arg(long, default_value = "5s", value_parser = parse_dur)]
    pub drain: Duration,
    /// Open-loop mode: total publish rate in msgs/s over all publishers, on a fixed schedule.
    /// Latency is measured from each message's intended send time (no coordinated
    /// omission). Without --rate: max-throughput mode, closed-loop with --inflight.
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Per publisher: most messages in flight. For QoS 1/2 the MQTT window (unacknowledged
    /// PUBLISHes); in max-throughput mode also the end-to-end window (sent but not yet received
    /// by every subscriber), so no broker queue grows without bound.
    #[arg(long, default_value_t = 64)]
    pub inflight: u32,
    /// Max-throughput mode: no end-to-end window, only the MQTT window (--inflight
    /// unacknowledged PUBLISHes) paces publishers, so a subscriber slower than its publishers
    /// makes the broker queue, push back or drop. For overload tests; QoS 0 publishers are then
    /// paced by TCP alone.
    #[arg(long)]
    pub no_e2e_window: bool,
    /// Record and print per-second counters per publisher group: sent, acknowledged,
    /// delivered, latency p50/p99/max (always on for `stalled`).
    #[arg(long)]
    pub timeline: bool,
    /// Per publisher: stop after this many messages (or at the end of the duration).
    #[arg(long)]
    pub count: Option<u64>,
    /// Topic pattern; {i} = publisher index, {run} = run id. Defaults per scenario.
    #[arg(long)]
    pub topic: Option<String>,
    /// I/O threads [default: CPUs available to this process, e.g. via taskset].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Connections being established at once (all threads together).
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Pause between the last SUBACK and the first publish.
    #[arg(long, default_value = "200ms", value_parser = parse_dur)]
    pub settle: Duration,
    /// Give up if connections and subscriptions are not all set up by then.
    #[arg(long, default_value = "120s", value_parser = parse_dur)]
    pub setup_timeout: Duration,
    /// Filters per SUBSCRIBE packet.
    #[arg(long, default_value_t = 100)]
    pub sub_batch: usize,
    /// Busy-poll instead of sleeping in epoll: removes wake-up latency (large on VMs, where
    /// waking an idle vCPU costs tens of µs) from the measurement, at the price of 100% of the
    /// generator's CPUs. Report CPU figures accordingly.
    #[arg(long)]
    pub spin: bool,
    /// Also measure platform hiccups (jHiccup-style: oversleep of a 1 ms sleep) during the
    /// window, to tell broker latency tails from machine stalls.
    #[arg(long)]
    pub hiccups: bool,
}

/// Where results go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Free-form label recorded in the JSON line (e.g. the broker name); `summarize` groups
    /// runs by it.
    #[arg(long)]
    pub label: Option<String>,
    /// Append the JSON line to this file (it is always printed as the last stdout line).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency histogram here in HdrHistogram percentile-distribution format.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write <label>-<scenario>-<time>.json and .hgrm into this directory.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Print only the JSON line.
    #[arg(long)]
    pub quiet: bool,
    /// Progress line on stderr every interval (0 = off; default on for runs ≥ 5 s).
    #[arg(long, value_parser = parse_dur)]
    pub progress: Option<Duration>,
    /// Exit with status 3 when any message the broker acknowledged (PUBACK / PUBCOMP) never
    /// reached a subscriber expecting it (the report says LOSS either way).
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FaninArgs {
    /// Publishers, each on its own topic.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// Subscribers, each on the covering wildcard filter.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Subscription filter [default: --topic with the {i} level replaced by +].
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StalledArgs {
    /// Healthy publisher→subscriber pairs, each on its own topic (paced by --rate if given).
    #[arg(long, short = 'n', default_value_t = 4)]
    pub pairs: usize,
    /// Publishers into the stalled topic; always closed loop, --inflight deep.
    #[arg(long, default_value_t = 4)]
    pub stalled_publishers: usize,
    /// Subscribers of the stalled topic that never read after SUBACK.
    #[arg(long, default_value_t = 1)]
    pub stalled_subscribers: usize,
    /// QoS the stalled subscribers subscribe with (deliveries go at min(this, --qos)).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub stalled_qos: u8,
    /// Topic prefix ({run} = run id): pairs on <prefix>/ok/{i}, the stalled topic <prefix>/stalled.
    #[arg(long, default_value = "bench/{run}/stalled")]
    pub prefix: String,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PairsArgs {
    /// Publisher/subscriber pairs.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub pairs: usize,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WildcardArgs {
    /// Total subscription filters, loaded before traffic starts.
    #[arg(long, default_value_t = 100_000)]
    pub filters: usize,
    /// Subscribers sharing the filters (filter i → subscriber i mod S). Keep filters per
    /// subscriber under the broker's per-session limit (ringmq: 10000).
    #[arg(long, default_value_t = 20)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Fraction of the filters that traffic hits (each hit topic matches exactly one filter).
    #[arg(long, default_value_t = 0.1)]
    pub hit_fraction: f64,
    /// Fraction of messages sent to topics that match no filter.
    #[arg(long, default_value_t = 0.0)]
    pub miss_ratio: f64,
    /// Relative weights of exact : + : # filters.
    #[arg(long, default_value = "1:1:1")]
    pub mix: String,
    /// Topic prefix of the filter tree ({run} = run id).
    #[arg(long, default_value = "bench/{run}/wc")]
    pub prefix: String,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ConnsArgs {
    /// Idle connections to open.
    #[arg(long, short = 'c', default_value_t = 1000)]
    pub connections: usize,
    /// Keep them open this long after the last one connected.
    #[arg(long, default_value = "5s", value_parser = parse_dur)]
    pub hold: Duration,
    /// Loopback source addresses (127.0.0.1, .2, ...) to spread connections over, each with
    /// its own ephemeral port range [default: enough for --connections].
    #[arg(long)]
    pub source_ips: Option<usize>,
    /// Connections being established at once.
    #[arg(long, default_value_t = 512)]
    pub connect_concurrency: usize,
    /// I/O threads [default: CPUs available].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    #[arg(long, default_value = "120s", value_parser = parse_dur)]
    pub setup_timeout: Duration,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// .hgrm files (HdrHistogram percentile distribution, plain or CSV).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the latency-by-percentile chart (SVG) here.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Curve labels, comma-separated [default: file stems].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    #[arg(long, default_value = "Latency by percentile")]
    pub title: String,
    /// Logarithmic latency axis (default linear, as HdrHistogram's plotter).
    #[arg(long)]
    pub log_y: bool,
    /// Unit of the files' value column.
    #[arg(long, default_value = "ms")]
    pub unit: String,
}

#[derive(Debug, Clone, Args)]
pub struct SummarizeArgs {
    /// JSON-line files or directories containing *.json.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Label the ratios are computed against (ratio = other / baseline).
    #[arg(long)]
    pub baseline: Option<String>,
    /// Print `label<TAB>hgrm path` of each label's median run instead of the table.
    #[arg(long)]
    pub median_hgrm: bool,
    /// Emit the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Keep retrying for this long.
    #[arg(long, default_value = "0s", value_parser = parse_dur)]
    pub wait: Duration,
}
