//! pitcrew's showcase: an HTTP server that mixes CPU work and waiting, load-tested in-process.
//!
//! Run with `cargo run --release --example demo` (`-- --help` lists the flags).
//!
//! What runs, on one pitcrew runtime (the "server"):
//!
//! - an HTTP/1.1 server (hyper on pitcrew) on 127.0.0.1. Each request is hashed (CPU work, in a
//!   child task so another worker can take it) while the handler looks the item up in...
//! - ...a second in-process service, "backend", reached over TCP through a small connection
//!   pool; it answers after a 1 ms timer, standing in for a storage read;
//! - a supervisor keeping a pool of background workers that flush the server's write-behind
//!   log. One of them, `flaky`, fails on purpose every 750 ms; the supervisor restarts it.
//!
//! Everything lives in one scope tree: the `demo` nursery holds the backend, the HTTP server
//! and the supervisor; the HTTP server is a nursery with one child per connection; each
//! connection is a nursery of its own requests' hashing tasks. When the demo's body returns,
//! the whole tree is cancelled and joined: nothing outlives it.
//!
//! A load generator on a second runtime drives the server over keep-alive connections for a
//! few seconds, then the demo prints requests/s, latency percentiles, what the runtime did, the
//! restarts and the task tree (`task::dump`, taken half way through).

// Examples are user code: they use std's atomics and locks, which the crate's own loom facade
// rule (clippy.toml) is not meant for.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use pitcrew::hyper::{HyperIo, HyperTimer};
use pitcrew::net::{TcpListener, TcpStream};
use pitcrew::scope::{
    self, nursery_with, supervisor, ChildSpec, Nursery, Restart, ScopeOptions, SupervisorOptions,
};
use pitcrew::task::{self, TaskInfo};
use pitcrew::{time, Handle, Runtime};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
pitcrew demo: an HTTP server mixing CPU work and I/O, with a built-in load generator

usage: cargo run --release --example demo -- [OPTIONS]

  --duration SECS    how long the load generator runs (default 5)
  --workers N        server worker threads (default: one per CPU)
  --connections N    keep-alive connections of the load generator (default 32)
  --serve            no built-in load: serve until Ctrl-C, for curl or wrk
  --help             this text";

/// The flaky worker fails this long after each start.
const CRASH_EVERY: Duration = Duration::from_millis(750);
/// Passes of the hash over each request body: tens of microseconds of CPU for the load's 4 KiB
/// bodies in a release build.
const HASH_ROUNDS: usize = 12;

/// How big a run is.
#[derive(Debug, Clone)]
struct Config {
    duration: Duration,
    workers: usize,
    connections: usize,
    serve: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            duration: Duration::from_secs(5),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            connections: 32,
            serve: false,
        }
    }
}

impl Config {
    /// The flags, or `None` for `--help`.
    fn from_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
        fn number(flag: &str, value: Option<String>) -> Result<u64, String> {
            let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{flag}: not a whole number: {value}"))
        }
        let mut config = Config::default();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--duration" => config.duration = Duration::from_secs(number(&arg, args.next())?),
                "--workers" => config.workers = number(&arg, args.next())? as usize,
                "--connections" => config.connections = number(&arg, args.next())?.max(1) as usize,
                "--serve" => config.serve = true,
                "--help" | "-h" => return Ok(None),
                other => return Err(format!("unknown argument: {other}")),
            }
        }
        Ok(Some(config))
    }
}

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("{msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What the server's parts share: counters for the summary and the write-behind log.
#[derive(Default)]
struct Stats {
    served: AtomicU64,
    restarts: AtomicU64,
    /// Digests of served requests, waiting for a background worker to flush them.
    log: Mutex<Vec<u64>>,
    flushed: AtomicU64,
    /// A line per restart; off with `--serve`, whose status line counts them instead.
    announce_restarts: bool,
}

/// Starts the server, drives the load against it (or serves until Ctrl-C with `--serve`), and
/// returns what it saw once every task of the server has ended.
fn run(config: &Config) -> Result<Summary, Box<dyn std::error::Error>> {
    let server_rt = Runtime::builder()
        .workers(config.workers)
        .thread_name("server")
        .build()?;
    // The load generator has a runtime of its own, so the server's metrics and task tree are
    // the server's alone.
    let load_rt = Runtime::builder().workers(1).thread_name("load").build()?;
    let server = server_rt.handle().clone();
    let stats_owned = Arc::new(Stats {
        announce_restarts: !config.serve,
        ..Stats::default()
    });
    let (stats, load_rt) = (&stats_owned, &load_rt);

    let load = server_rt.block_on(nursery_with(
        ScopeOptions::new().name("demo"),
        |demo: Nursery<BoxError>| async move {
            let backend_listener = TcpListener::bind("127.0.0.1:0").await?;
            let backend = Arc::new(Backend::new(backend_listener.local_addr()?));
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            println!(
                "pitcrew demo: serving http://{addr} with {} worker thread(s) (backend on {})",
                config.workers, backend.addr
            );

            // Background children: the nursery does not wait for them. They are cancelled, and
            // joined, when the body below returns.
            let child = |name: &'static str| demo.child().name(name).background();
            child("backend").spawn(serve_backend(backend_listener));
            child("http").spawn(serve_http(listener, backend, stats.clone()));
            child("workers").spawn(run_workers(stats.clone()));

            if config.serve {
                serve_forever(addr, stats).await;
            }
            // A pitcrew JoinHandle can be awaited from anywhere, another runtime included.
            let load = load_rt.spawn(drive_load(addr, config.clone(), stats.clone(), server));
            load.await?
        },
    ))?;

    let m = server_rt.metrics();
    // Every task of the server was in the demo scope, which has joined them all: the
    // shutdown has nothing left to cancel.
    let shutdown = server_rt.shutdown(Duration::from_secs(1));
    Ok(Summary {
        workers: config.workers,
        requests: load.latencies.len() as u64,
        errors: load.errors,
        elapsed: load.elapsed,
        p50: percentile(&load.latencies, 50),
        p99: percentile(&load.latencies, 99),
        spawned: m.spawned,
        steals: m.steals,
        polls: m.polls,
        restarts: stats_owned.restarts.load(Relaxed),
        flushed: stats_owned.flushed.load(Relaxed),
        served: stats_owned.served.load(Relaxed),
        tree: load.tree,
        tree_at: load.tree_at,
        dropped_at_shutdown: shutdown.dropped,
    })
}

// ---- The HTTP server ------------------------------------------------------------------------

/// Accepts connections; each one is an isolated child of the `http` nursery: a connection that
/// fails is that connection's business, not the server's.
async fn serve_http(
    listener: TcpListener,
    backend: Arc<Backend>,
    stats: Arc<Stats>,
) -> Result<(), BoxError> {
    nursery_with::<(), BoxError, _, _>(ScopeOptions::new().name("http"), |http| async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                // Out of file descriptors, or the peer left before we accepted: the listener
                // is fine, so keep serving.
                Err(err) => {
                    eprintln!("accept: {err}");
                    continue;
                }
            };
            let conn = serve_connection(stream, backend.clone(), stats.clone());
            http.child().name("connection").isolated().spawn(conn);
        }
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// One keep-alive connection, in a nursery of its own: the request handlers spawn their CPU
/// work into it, so when the connection goes, its unfinished work goes with it.
async fn serve_connection(
    stream: TcpStream,
    backend: Arc<Backend>,
    stats: Arc<Stats>,
) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    nursery_with(ScopeOptions::new().name("conn"), |conn| async move {
        let service = hyper::service::service_fn(move |req| {
            handle(req, conn.clone(), backend.clone(), stats.clone())
        });
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer::new())
            .serve_connection(HyperIo::new(stream), service)
            .await?;
        Ok(())
    })
    .await
    .map_err(|e| e.to_string().into())
}

/// `POST /item/{n}` with a body: hashes the body while it looks item `n` up in the backend.
async fn handle(
    req: Request<Incoming>,
    conn: Nursery<BoxError>,
    backend: Arc<Backend>,
    stats: Arc<Stats>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let item: u64 = req
        .uri()
        .path()
        .strip_prefix("/item/")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // A server bounds what it buffers: 1 MiB is plenty here.
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return Ok(reply(StatusCode::BAD_REQUEST, format!("{err}\n"))),
    };

    // The CPU half goes to a child task: while this handler waits for the backend, an idle
    // worker can steal the hashing.
    let hashing = conn
        .child()
        .name("hash")
        .spawn(async move { Ok(hash(&body)?) });
    let stock = time::timeout(Duration::from_secs(5), backend.stock(item)).await;
    let digest = hashing.await;

    let (digest, stock) = match (digest, stock) {
        (Ok(digest), Ok(Ok(stock))) => (digest, stock),
        (_, Err(_)) => return Ok(reply(StatusCode::GATEWAY_TIMEOUT, "backend timed out\n")),
        (_, Ok(Err(err))) => return Ok(reply(StatusCode::BAD_GATEWAY, format!("{err}\n"))),
        (Err(err), _) => return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"))),
    };
    stats.log.lock().unwrap().push(digest);
    stats.served.fetch_add(1, Relaxed);
    Ok(reply(
        StatusCode::OK,
        format!("item {item}: {stock} in stock; body digest {digest:016x}\n"),
    ))
}

fn reply(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(text.into()));
    *response.status_mut() = status;
    response
}

/// The CPU work: `HASH_ROUNDS` passes of FNV-1a over the body, standing in for compression,
/// encryption or parsing. It checks for cancellation between passes, so work whose connection
/// is gone stops burning CPU.
fn hash(body: &[u8]) -> Result<u64, scope::Cancelled> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..HASH_ROUNDS {
        scope::checkpoint()?;
        for &byte in body {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(h)
}

// ---- The backend: a second service over TCP -------------------------------------------------

/// A client of the backend with a pool of idle connections, so that a request costs one round
/// trip and no connect.
struct Backend {
    addr: SocketAddr,
    idle: Mutex<Vec<TcpStream>>,
}

impl Backend {
    fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Asks the backend how many of `item` are in stock: 8 bytes out, 8 bytes back.
    async fn stock(&self, item: u64) -> std::io::Result<u64> {
        let idle = self.idle.lock().unwrap().pop();
        let mut stream = match idle {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                stream
            }
        };
        stream.write_all(&item.to_le_bytes()).await?;
        let mut answer = [0; 8];
        stream.read_exact(&mut answer).await?;
        // Only a connection that finished its exchange goes back: one dropped half-way (an
        // error, or this future cancelled) is closed instead.
        self.idle.lock().unwrap().push(stream);
        Ok(u64::from_le_bytes(answer))
    }
}

/// The backend's server: one isolated child per connection, each answering after a 1 ms timer.
async fn serve_backend(listener: TcpListener) -> Result<(), BoxError> {
    nursery_with::<(), BoxError, _, _>(ScopeOptions::new().name("backend"), |backend| async move {
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            backend.child().name("lookup").isolated().spawn(async move {
                let mut item = [0; 8];
                while stream.read_exact(&mut item).await.is_ok() {
                    time::sleep(Duration::from_millis(1)).await;
                    let stock = u64::from_le_bytes(item).wrapping_mul(2_654_435_761) % 1_000;
                    stream.write_all(&stock.to_le_bytes()).await?;
                }
                Ok::<(), BoxError>(())
            });
        }
    })
    .await
    .map_err(|e| e.to_string().into())
}

// ---- The supervised background workers -----------------------------------------------------

/// A supervisor with three workers flushing the write-behind log; `flaky` fails every
/// `CRASH_EVERY` and is restarted, one for one, after a short back-off.
async fn run_workers(stats: Arc<Stats>) -> Result<(), BoxError> {
    let opts = SupervisorOptions::new()
        .name("workers")
        .intensity(10, Duration::from_secs(5))
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    supervisor(opts, |sup| async move {
        for name in ["flusher-0", "flusher-1"] {
            let stats = stats.clone();
            let spec = ChildSpec::new(name, move || flush(stats.clone(), None));
            // Transient: a worker that ends cleanly (its scope was cancelled) stays ended.
            sup.add(spec.restart(Restart::Transient));
        }
        let starts = AtomicU64::new(0);
        let spec = ChildSpec::new("flaky", move || {
            // The factory runs on every (re)start, so this is where a restart shows.
            if starts.fetch_add(1, Relaxed) > 0 {
                let n = stats.restarts.fetch_add(1, Relaxed) + 1;
                if stats.announce_restarts {
                    let what = "failed on purpose; its supervisor restarted it";
                    event(&format!("  worker \"flaky\" {what} (restart {n})"));
                }
            }
            flush(stats.clone(), Some(CRASH_EVERY))
        });
        sup.add(spec.restart(Restart::Transient));
    })
    .await?;
    Ok(())
}

/// Flushes the log every 10 ms; with `crash_after`, fails that long after it started.
async fn flush(stats: Arc<Stats>, crash_after: Option<Duration>) -> Result<(), String> {
    let started = Instant::now();
    let mut tick = time::interval(Duration::from_millis(10));
    while !scope::is_cancelled() {
        tick.tick().await;
        let batch = std::mem::take(&mut *stats.log.lock().unwrap());
        stats.flushed.fetch_add(batch.len() as u64, Relaxed);
        if crash_after.is_some_and(|after| started.elapsed() >= after) {
            return Err("injected fault".to_string());
        }
    }
    Ok(())
}

// ---- The load generator ---------------------------------------------------------------------

/// What the load generator measured.
struct Load {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
    tree: String,
    tree_at: Duration,
}

/// Drives `config.connections` keep-alive connections for `config.duration` with a progress
/// line; half way through, takes the server's task tree.
async fn drive_load(
    addr: SocketAddr,
    config: Config,
    stats: Arc<Stats>,
    server: Handle,
) -> Result<Load, BoxError> {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + config.duration;
    let (recorded, failed) = (&latencies, &errors);
    let (tree, tree_at) = nursery_with(ScopeOptions::new().name("load"), |load| async move {
        // 4 KiB bodies of varied bytes, shared by every request.
        let body: Bytes = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        for item in 0..config.connections as u64 {
            let client = client(addr, item, body.clone(), recorded.clone(), failed.clone());
            // Background: when the body returns at the deadline, the clients are cancelled.
            load.child().name("client").background().spawn(client);
        }
        let mut tree = None;
        let mut progress = Progress::new();
        let mut tick = time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            if tree.is_none() && elapsed >= config.duration / 2 {
                tree = Some((format_tree(&task::dump(&server)), elapsed));
            }
            let done = recorded.lock().unwrap().len();
            let line = format!(
                "  {:>5.1} s  {done:>9} requests  {:>8.0} req/s  {} restarts",
                elapsed.as_secs_f64(),
                done as f64 / elapsed.as_secs_f64(),
                stats.restarts.load(Relaxed),
            );
            if Instant::now() >= deadline {
                progress.finish(&line);
                break;
            }
            progress.update(&line);
        }
        let tree = match tree {
            Some(tree) => tree,
            None => (format_tree(&task::dump(&server)), started.elapsed()),
        };
        Ok::<_, BoxError>(tree)
    })
    .await
    .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(Load {
        latencies,
        errors: errors.load(Relaxed),
        elapsed,
        tree,
        tree_at,
    })
}

/// One keep-alive connection sending `POST /item/{item}` back to back.
async fn client(
    addr: SocketAddr,
    item: u64,
    body: Bytes,
    latencies: Arc<Mutex<Vec<Duration>>>,
    errors: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
    // The connection's I/O runs beside us; a plain spawn inside a scope joins that scope, so
    // it is cancelled with this client.
    pitcrew::spawn(connection);
    loop {
        let request = Request::post(format!("/item/{item}"))
            .header(hyper::header::HOST, "demo")
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let ok = response.status() == StatusCode::OK;
        let text = response.into_body().collect().await?.to_bytes();
        if ok && text.starts_with(b"item ") {
            latencies.lock().unwrap().push(sent.elapsed());
        } else {
            errors.fetch_add(1, Relaxed);
        }
    }
}

/// `--serve`: a status line every 5 s, until the process is stopped.
async fn serve_forever(addr: SocketAddr, stats: &Stats) -> ! {
    println!("  try: curl -d 'hello' http://{addr}/item/7");
    println!("  or:  wrk -t2 -c32 -d10s http://{addr}/item/7");
    println!("  Ctrl-C stops it.");
    let mut tick = time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        event(&format!(
            "  served {} requests, {} restarts",
            stats.served.load(Relaxed),
            stats.restarts.load(Relaxed)
        ));
    }
}

// ---- Output ---------------------------------------------------------------------------------

/// Prints a line above the progress line.
fn event(line: &str) {
    if std::io::stdout().is_terminal() {
        println!("\r\x1b[K{line}");
    } else {
        println!("{line}");
    }
}

/// The load generator's progress line: redrawn in place on a terminal; elsewhere (a pipe, a
/// test) printed as a plain line once a second.
struct Progress {
    tty: bool,
    updates: u32,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stdout().is_terminal(),
            updates: 0,
        }
    }

    fn update(&mut self, line: &str) {
        self.updates += 1;
        if self.tty {
            print!("\r\x1b[K{line}");
            let _ = std::io::stdout().flush();
        } else if self.updates % 4 == 0 {
            println!("{line}");
        }
    }

    /// The last line, kept.
    fn finish(&mut self, line: &str) {
        let clear = if self.tty { "\r\x1b[K" } else { "" };
        println!("{clear}{line}");
    }
}

/// The task tree of a `task::dump`: scopes as headers, and under each, one line per task name
/// with a count and states (a busy server has hundreds of tasks; a line each would drown the
/// summary).
fn format_tree(tasks: &[TaskInfo]) -> String {
    type States = BTreeMap<String, usize>;
    let mut scopes: BTreeMap<Vec<String>, BTreeMap<String, States>> = BTreeMap::new();
    for t in tasks {
        let path = t.scope_path.iter().map(|s| s.to_string()).collect();
        let name = t.name.as_deref().unwrap_or("(unnamed)").to_string();
        let states = scopes.entry(path).or_default().entry(name).or_default();
        *states.entry(t.state.to_string()).or_default() += 1;
    }
    let mut out = String::new();
    let mut open: &[String] = &[];
    for (path, names) in &scopes {
        let shared = open.iter().zip(path).take_while(|(a, b)| a == b).count();
        for (depth, scope) in path.iter().enumerate().skip(shared) {
            let _ = writeln!(out, "{:indent$}{scope}/", "", indent = 4 + 2 * depth);
        }
        open = path;
        for (name, states) in names {
            let count: usize = states.values().sum();
            let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let indent = 4 + 2 * path.len();
            let _ = writeln!(
                out,
                "{:indent$}{count} x {name:?} ({})",
                "",
                states.join(", ")
            );
        }
    }
    out
}

fn percentile(latencies: &[Duration], p: usize) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(n * p / 100).min(n - 1)],
    }
}

/// What the demo prints at the end.
#[derive(Debug)]
struct Summary {
    workers: usize,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    spawned: u64,
    steals: u64,
    polls: u64,
    restarts: u64,
    flushed: u64,
    served: u64,
    tree: String,
    tree_at: Duration,
    dropped_at_shutdown: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(f, "summary")?;
        writeln!(
            f,
            "  requests    {} in {secs:.1} s: {:.0} req/s, {} errors",
            self.requests,
            self.requests as f64 / secs,
            self.errors
        )?;
        writeln!(
            f,
            "  latency     p50 {:.2?}, p99 {:.2?}",
            self.p50, self.p99
        )?;
        writeln!(
            f,
            "  runtime     {} worker thread(s): {} tasks spawned, {} polls, {} steals",
            self.workers, self.spawned, self.polls, self.steals
        )?;
        writeln!(
            f,
            "  supervisor  {} restarts of \"flaky\"; the workers flushed {} of {} log records",
            self.restarts, self.flushed, self.served
        )?;
        writeln!(
            f,
            "  shutdown    the demo scope joined every task; {} left to drop",
            self.dropped_at_shutdown
        )?;
        writeln!(
            f,
            "  task tree of the server at {:.1} s (task::dump):",
            self.tree_at.as_secs_f64()
        )?;
        f.write_str(&self.tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README promises this: a short run serves requests, shows a restart and a task tree.
    #[test]
    fn two_second_run_serves_requests_restarts_a_worker_and_dumps_the_task_tree() {
        let config = Config {
            duration: Duration::from_secs(2),
            workers: 1,
            connections: 2,
            serve: false,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run(&config).map_err(|e| e.to_string()));
        });
        let summary = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo did not finish within 60 s")
            .expect("the demo failed");
        println!("{summary}");

        assert!(summary.requests > 0, "no requests completed");
        assert_eq!(summary.errors, 0, "requests answered with an error");
        assert!(summary.p50 > Duration::ZERO && summary.p50 <= summary.p99);
        assert!(
            summary.restarts >= 1,
            "the flaky worker was never restarted"
        );
        assert!(
            summary.spawned > summary.requests,
            "each request spawns a task"
        );
        assert_eq!(
            summary.dropped_at_shutdown, 0,
            "tasks outlived the demo scope"
        );
        for part in [
            "demo/",
            "http/",
            "\"connection\"",
            "backend/",
            "workers/",
            "\"flaky\"",
        ] {
            assert!(
                summary.tree.contains(part),
                "task tree lacks {part}:\n{}",
                summary.tree
            );
        }
        let text = summary.to_string();
        assert!(text.contains("req/s") && text.contains("p99") && text.contains("restarts"));
    }

    #[test]
    fn flags_parse_and_help_is_not_an_error() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let c = Config::from_args(args("--duration 2 --workers 1 --serve").into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.duration, c.workers, c.serve),
            (Duration::from_secs(2), 1, true)
        );
        assert!(Config::from_args(args("--help").into_iter())
            .unwrap()
            .is_none());
        assert!(Config::from_args(args("--workers").into_iter()).is_err());
        assert!(Config::from_args(args("--bogus").into_iter()).is_err());
    }
}
