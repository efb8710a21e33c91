//! `weir serve`: builds the threads of DESIGN.md and wires them together.
//!
//! Start-up order matters: the catalog is loaded and the WAL replayed into the write buffer
//! before any shard listens, so the first query after a restart already sees every acked write.
//! The WAL triggers' saved cursors are read before replay, so the segments they still need are
//! kept. Then the query runtime, the processing engine (it reads commits from the commit log the
//! shards append to, and the WAL behind it), and one glommio executor per shard, each with its
//! own SO_REUSEPORT listener on the same address and a queue for plugin writes. It owns no
//! request logic.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use pipeline::buffer::WriteBuffer;
use pipeline::catalog::Catalog;
use pipeline::commit_log::CommitLog;
use pipeline::shard::Shard;
use pipeline::stats::WriteStats;
use pipeline::wal::{ReplayOptions, SegmentWriter};
use pipeline::wal_retention::WalRetention;

use crate::auth::token::OfflineTokenFile;
use crate::auth::Authority;
use crate::config::{ObjectStoreKind, ServeConfig};
use crate::engine::ingest::ShardIngest;
use crate::py_api::Services;
use crate::query::plugin_sql::RuntimeSql;
use crate::plugin_logs::PluginLogs;
use crate::engine::{Engine, EngineConfig, WalSource};
use crate::http::conn::{ConnClock, Watch};
use crate::http::io::GlommioIo;
use crate::http::{Api, ShardContext};
use crate::metrics::Metrics;
use crate::query::QueryEngine;
use crate::storage::persist::{PersistConfig, Persister};
use crate::storage::store::{S3Options, Store};
use crate::storage::Storage;

/// glommio's registered I/O buffers; the default (10 MiB) exceeds a common 8 MiB memlock limit.
const SHARD_IO_MEMORY_BYTES: usize = 512 << 10;

pub fn run(mut cfg: ServeConfig) -> anyhow::Result<()> {
    // Absolute: glommio opens the WAL's directories without the working directory (a relative
    // `--data-dir`, the default `./data` included, failed with EBADF).
    cfg.data_dir = std::path::absolute(&cfg.data_dir).context("resolving --data-dir")?;
    crate::alloc::set_purge_delay(cfg.allocator_purge_delay_ms);
    crate::alloc::set_huge_pages(cfg.allocator_huge_pages);
    init_logging(&cfg.log_filter);
    abort_on_shard_panic();
    ignore_file_size_signal();
    // Kept alive until exit for the `memory` store.
    let mut _temp = None;
    let root: PathBuf = match cfg.object_store {
        ObjectStoreKind::File => cfg.data_dir.join(&cfg.node_id),
        ObjectStoreKind::Memory => {
            let t = tempfile::Builder::new().prefix("weir-memory-").tempdir()?;
            let p = t.path().join(&cfg.node_id);
            _temp = Some(t);
            p
        }
        // The WAL and the catalog stay on the local disk; Parquet, index and a catalog copy
        // go to the bucket.
        ObjectStoreKind::S3 => cfg.data_dir.join(&cfg.node_id),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("creating data directory {}", root.display()))?;
    std::fs::create_dir_all(&cfg.plugin_dir)
        .with_context(|| format!("creating plugin directory {}", cfg.plugin_dir.display()))?;
    // Absolute, so PLUGIN_DIR and plugin `__file__`s mean the same from any working directory.
    let plugin_dir = std::fs::canonicalize(&cfg.plugin_dir).unwrap_or_else(|_| cfg.plugin_dir.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.query_thread_count())
        .thread_name("weir-query")
        .enable_all()
        .build()?;
    let store = open_store(&cfg, &runtime)?;
    let storage = Arc::new(runtime.block_on(Storage::open(&cfg.node_id, store)).context("loading the Parquet file index")?);
    let persisted = storage.index();
    let catalog_copy = if storage.store.is_remote() {
        runtime
            .block_on(crate::storage::catalog_copy::load_newest(&storage.store, &cfg.node_id))
            .context("loading the object store's copy of the catalog")?
    } else {
        None
    };
    let catalog = Arc::new(Catalog::open_seeded(&root.join("catalog"), catalog_copy).context("loading the catalog")?);
    let buffer = Arc::new(WriteBuffer::new());
    buffer.set_cap_bytes(cfg.max_buffer_bytes());
    catalog.use_commit_counter(buffer.commit_counter());
    for ((db_id, table_id), floor, ranges) in persisted.seeds() {
        // Rows replayed or written from now on may repeat persisted ones (point semantics).
        buffer.seed_overlaps(db_id, table_id, floor, ranges);
    }
    let wal_root = root.join("wal");
    let cursors = crate::engine::cursors::CursorStore::open(root.join("triggers").join("cursors.json")).context("loading trigger cursors")?;
    // The WAL the enabled WAL triggers have not handled yet is kept, persisted or not.
    let held_from = held_by_triggers(&catalog, &cursors.saved());
    let replay_started = Instant::now();
    let replay_opts = ReplayOptions { from_commit: persisted.persisted_through, skip_corrupt: cfg.wal_skip_corrupt, keep_from: held_from };
    let stats = pipeline::replay::replay_into(&wal_root, replay_opts, &catalog, &buffer).context("replaying the WAL")?;
    tracing::info!(
        segments = stats.segments,
        records = stats.records,
        skipped_persisted = stats.skipped_records,
        entries = stats.entries,
        truncated = stats.truncated.len(),
        quarantined = stats.quarantined.len(),
        parquet_files = persisted.files.len(),
        persisted_through = persisted.persisted_through,
        elapsed_ms = replay_started.elapsed().as_millis() as u64,
        "WAL replayed"
    );
    let retention = Arc::new(WalRetention::new());
    retention.hold_from(held_from.unwrap_or(u64::MAX));
    // Commits from here on are in memory for WAL triggers; earlier ones are read from the WAL.
    let log = Arc::new(CommitLog::new(buffer.commits(), cfg.trigger_memory_bytes()));
    for (path, max_commit) in stats.kept.iter().cloned() {
        // Segments of earlier runs are closed: no writer appends to them again.
        retention.closed(path, max_commit);
    }
    let persist_cfg = PersistConfig { gen1: cfg.gen1_duration, threshold_bytes: cfg.persist_threshold_bytes() };
    tracing::info!(
        max_buffer_bytes = cfg.max_buffer_bytes(),
        persist_threshold_bytes = persist_cfg.threshold_bytes,
        gen1 = ?cfg.gen1_duration,
        "write buffer capped; persisting to Parquet"
    );
    Persister::new(storage.clone(), buffer.clone(), catalog.clone(), retention.clone(), persist_cfg)
        .spawn(runtime.handle().clone())
        .context("starting the persister")?;
    let shards = cfg.shard_count();
    let write_stats = Arc::new(WriteStats::default());
    let logs = Arc::new(PluginLogs::default());
    let limits = cfg.query_limits();
    tracing::info!(query_memory_bytes = limits.memory_bytes, query_timeout = ?limits.timeout, max_concurrent_queries = cfg.max_concurrent_queries(), "query limits");
    let query = Arc::new(
        QueryEngine::new(catalog.clone(), buffer.clone(), storage.clone(), logs.clone(), cfg.query_thread_count(), limits)
            .context("starting the query engine")?,
    );
    let (ingest, mut ingest_rx) = ShardIngest::new(shards);
    let (balancer, mut handed_rx) = crate::http::balance::Balancer::new(shards);
    let services = Arc::new(Services {
        writer: Arc::new(ingest),
        sql: Arc::new(RuntimeSql { engine: query.clone(), runtime: runtime.handle().clone() }),
        logs,
        global_cache: Arc::default(),
        writes_in_flight: Default::default(),
    });
    let (auth, engine_token) = Authority::new(!cfg.without_auth, catalog.clone(), cfg.disable_authz.iter().any(|r| r == "metrics"))
        .context("starting auth")?;
    let auth = Arc::new(auth);
    if let Some(path) = &cfg.admin_token_file {
        let file = OfflineTokenFile::read(path)?;
        crate::auth::issue::provision(&auth, file).context("provisioning the admin token file")?;
    }
    announce_auth(&auth, cfg.http_bind);
    let engine_cfg = EngineConfig {
        plugin_dir,
        plugin_repo: cfg.plugin_repo.clone(),
        packages: crate::engine::packages::PackagePolicy {
            enabled: !cfg.disable_package_management,
            timeout: cfg.package_install_timeout,
            system_site_packages: cfg.plugin_system_packages,
        },
        executors: cfg.py_executor_count(),
        default_timeout: cfg.plugin_timeout,
        memory_limit: cfg.plugin_memory_limit(),
        max_batch_rows: cfg.trigger_max_batch_rows,
        flush_interval: cfg.wal_flush_interval,
        max_lag: cfg.trigger_max_lag,
        wal: WalSource { log: log.clone(), root: wal_root.clone(), retention: retention.clone(), cursors },
        auth_token: auth.enabled().then_some(engine_token),
    };
    let engine = Engine::start(engine_cfg, catalog.clone(), buffer.clone(), services).context("starting the processing engine")?;
    query.set_trigger_status(Arc::new(engine.clone()));
    let api = Arc::new(Api {
        catalog: catalog.clone(),
        buffer: buffer.clone(),
        storage: storage.clone(),
        query,
        engine: engine.clone(),
        max_body_bytes: cfg.max_http_request_size,
        connections: connection_limits(&cfg),
        queries: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent_queries())),
        metrics: Metrics::new(write_stats.clone(), buffer.clone(), storage.clone()),
        auth,
    });

    // Shard 0 binds first so that a port of 0 resolves to one port all shards then share.
    let mut addr = cfg.http_bind;
    for id in 0..shards {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
        let shard_cfg = ShardStart {
            id,
            addr,
            catalog: catalog.clone(),
            buffer: buffer.clone(),
            log: log.clone(),
            api: api.clone(),
            stats: write_stats.clone(),
            runtime: runtime.handle().clone(),
            wal_root: wal_root.clone(),
            retention: retention.clone(),
            ingest: ingest_rx.remove(0),
            balancer: balancer.clone(),
            handed: handed_rx.remove(0),
        };
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("weir-shard-{id}"))
            .io_memory(SHARD_IO_MEMORY_BYTES)
            .spawn(move || run_shard(shard_cfg, ready_tx))
            .map_err(|e| anyhow::anyhow!("starting shard {id}: {e}"))?;
        addr = ready_rx.recv().context("a shard died while starting")??;
    }
    // Tests and scripts wait for this line.
    println!("weir listening on http://{addr} ({shards} shards)");
    tracing::info!(%addr, shards, data = %root.display(), "weir is ready");

    runtime.block_on(wait_for_signal());
    tracing::info!(timeout = ?cfg.shutdown_timeout, "shutting down: waiting for running plugin calls");
    let unfinished = engine.shutdown(cfg.shutdown_timeout);
    if !unfinished.is_empty() {
        tracing::warn!(triggers = ?unfinished, "plugin calls still running at the shutdown timeout are abandoned; their rows are handed over again after the restart");
    }
    engine.save_cursors();
    drop(_temp);
    // Every acked write is already durable; nothing else needs an orderly stop.
    std::process::exit(0);
}

/// Says how auth stands at start: off (loudly, if others can reach the port), or on with no
/// token yet (and how to make one).
fn announce_auth(auth: &Authority, bind: SocketAddr) {
    if !auth.enabled() {
        if bind.ip().is_loopback() {
            tracing::info!("auth is off (--without-auth): any local client may do anything");
        } else {
            tracing::warn!(%bind, "auth is off (--without-auth) and the server listens beyond loopback: anyone who reaches the port can write, query and run plugins");
        }
    } else if !crate::auth::issue::has_operator(auth) {
        tracing::info!("auth is on and no operator token exists yet: create it with 'weir create token --admin' (or POST /api/v3/configure/token/admin)");
    }
}

/// The lowest saved cursor of the enabled WAL triggers: the WAL from there on is kept.
fn held_by_triggers(catalog: &Catalog, saved: &crate::engine::cursors::Cursors) -> Option<u64> {
    let snapshot = catalog.snapshot();
    let mut held = None;
    for d in snapshot.databases.values() {
        for t in d.triggers.values().filter(|t| !t.disabled) {
            let wal = crate::engine::spec::TriggerSpec::parse(&t.specification).is_ok_and(|s| s.is_wal());
            if let Some(&c) = saved.get(&(d.name.clone(), t.name.clone())).filter(|_| wal) {
                held = Some(held.map_or(c, |h: u64| h.min(c)));
            }
        }
    }
    held
}

struct ShardStart {
    id: usize,
    addr: SocketAddr,
    catalog: Arc<Catalog>,
    buffer: Arc<WriteBuffer>,
    log: Arc<CommitLog>,
    api: Arc<Api>,
    stats: Arc<WriteStats>,
    runtime: tokio::runtime::Handle,
    wal_root: PathBuf,
    retention: Arc<WalRetention>,
    ingest: futures_channel::mpsc::Receiver<crate::engine::ingest::IngestJob>,
    balancer: Arc<crate::http::balance::Balancer>,
    handed: futures_channel::mpsc::UnboundedReceiver<crate::http::balance::Handoff>,
}

async fn run_shard(s: ShardStart, ready: std::sync::mpsc::Sender<anyhow::Result<SocketAddr>>) {
    let started = async {
        let listener = glommio::net::TcpListener::bind(s.addr).map_err(|e| anyhow::anyhow!("binding {}: {e}", s.addr))?;
        let wal = SegmentWriter::open(&s.wal_root, s.id, s.retention.clone()).await.context("opening the WAL")?;
        anyhow::Ok((listener, wal))
    };
    let (listener, wal) = match started.await {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let local = listener.local_addr().unwrap_or(s.addr);
    let shard = Rc::new(Shard::new(s.id, s.catalog, s.buffer, s.log, s.stats));
    glommio::spawn_local(shard.clone().run_flusher(wal)).detach();
    glommio::spawn_local(crate::engine::ingest::serve(shard.clone(), s.ingest)).detach();
    let deadlines = Rc::new(crate::http::deadline::Deadlines::default());
    glommio::spawn_local(deadlines.clone().run()).detach();
    let ctx = Rc::new(ShardContext { shard, api: s.api, runtime: s.runtime, deadlines });
    let _ = ready.send(Ok(local));
    {
        // Connections other shards accepted and handed over to this one.
        let ctx = ctx.clone();
        let mut handed = s.handed;
        glommio::spawn_local(async move {
            while let Some((fd, open)) = futures_lite::StreamExt::next(&mut handed).await {
                serve_connection(ctx.clone(), stream_from(fd), open);
            }
        })
        .detach();
    }
    loop {
        let stream = match listener.accept().await {
            Ok(st) => st,
            Err(e) => {
                // Out of file descriptors and the like: pause, do not spin or die.
                tracing::warn!(shard = s.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let max = ctx.api.connections.max_connections;
        if s.balancer.total() >= max {
            refuse(stream, max);
            continue;
        }
        let _ = stream.set_nodelay(true);
        if let Some(stream) = hand_over_or_keep(&s.balancer, s.id, stream) {
            serve_connection(ctx.clone(), stream, s.balancer.open(s.id));
        }
    }
}

/// The connection bounds, with `--max-connections` defaulting to what the descriptor limit
/// (raised first) leaves.
fn connection_limits(cfg: &ServeConfig) -> crate::http::conn::ConnLimits {
    let descriptors = crate::http::conn::raise_descriptor_limit();
    let max_connections =
        cfg.max_connections.unwrap_or_else(|| crate::http::conn::default_max_connections(descriptors)).max(1);
    tracing::info!(max_connections, descriptors, "connection limit");
    crate::http::conn::ConnLimits {
        header_timeout: cfg.http_header_timeout,
        idle_timeout: cfg.http_idle_timeout,
        body_timeout: cfg.http_body_timeout,
        max_connections,
    }
}

/// Answers a connection over the cap with 503 and closes it.
fn refuse(mut stream: glommio::net::TcpStream, max: usize) {
    glommio::spawn_local(async move {
        use futures_lite::AsyncWriteExt;
        // A fresh socket's send buffer holds this whole; a client that reads nothing is no cost.
        let _ = stream.write_all(&crate::http::conn::refusal(max)).await;
        let _ = stream.close().await;
    })
    .detach();
}

/// How long start-up waits for the bucket's first answer.
const S3_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// The object store `--object-store` names. An S3 bucket is checked at once, so a wrong
/// endpoint, bucket or key stops the start with S3's own answer.
fn open_store(cfg: &ServeConfig, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Store> {
    match cfg.object_store {
        ObjectStoreKind::File => Store::file(&cfg.data_dir).context("opening the file object store"),
        ObjectStoreKind::Memory => Ok(Store::memory()),
        ObjectStoreKind::S3 => {
            let Some(bucket) = cfg.bucket.clone() else {
                bail!("--object-store s3 needs --bucket (or WEIR_BUCKET)");
            };
            let opts = S3Options {
                bucket,
                endpoint: cfg.aws_endpoint.clone(),
                region: cfg.aws_default_region.clone(),
                access_key_id: cfg.aws_access_key_id.clone(),
                secret_access_key: cfg.aws_secret_access_key.clone(),
                session_token: cfg.aws_session_token.clone(),
                allow_http: cfg.aws_allow_http,
            };
            let store = Store::s3(&opts).context("configuring the s3 object store")?;
            let prefix = object_store::path::Path::from(cfg.node_id.as_str());
            // object_store retries a dead endpoint for minutes; a start should not wait that long.
            runtime
                .block_on(async { tokio::time::timeout(S3_CHECK_TIMEOUT, store.check(&prefix)).await })
                .map_err(|_| anyhow::anyhow!("no answer within {S3_CHECK_TIMEOUT:?}"))
                .and_then(|r| r.map_err(anyhow::Error::from))
                .with_context(|| format!("reaching bucket '{}' at {}", opts.bucket, opts.endpoint.as_deref().unwrap_or("AWS")))?;
            tracing::info!(bucket = %opts.bucket, endpoint = ?opts.endpoint, "using the s3 object store");
            Ok(store)
        }
    }
}

/// Hands a connection shard `id` just accepted to a shard serving fewer; gives it back when
/// this shard should serve it (none serves fewer, or the hand-off failed).
fn hand_over_or_keep(
    balancer: &Arc<crate::http::balance::Balancer>,
    id: usize,
    stream: glommio::net::TcpStream,
) -> Option<glommio::net::TcpStream> {
    let to = balancer.place(id);
    if to == id {
        return Some(stream);
    }
    // SAFETY: the descriptor stays open while `stream` lives; it is duplicated before the drop.
    let Ok(fd) = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned() else {
        return Some(stream);
    };
    // Closing this copy leaves the socket open through the duplicate.
    drop(stream);
    balancer.hand_over(to, fd).err().map(stream_from)
}

/// A shard's stream over a connected TCP socket it owns alone.
fn stream_from(fd: std::os::fd::OwnedFd) -> glommio::net::TcpStream {
    // SAFETY: `OwnedFd` guarantees the descriptor is open and owned by no one else; every one
    // passed here is an accepted (connected) TCP socket.
    unsafe { glommio::net::TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// Serves one connection on this shard until it closes; `open` counts it meanwhile.
fn serve_connection(ctx: Rc<ShardContext>, stream: glommio::net::TcpStream, open: crate::http::balance::Open) {
    glommio::spawn_local(async move {
        match crate::http::h2::sniff(&stream, ctx.api.connections.idle_timeout).await {
            crate::http::h2::Protocol::Http1 => {}
            crate::http::h2::Protocol::Gone => return,
            crate::http::h2::Protocol::Http2 => {
                crate::http::h2::serve_on_runtime(&ctx.runtime, ctx.api.clone(), stream, open);
                return;
            }
        }
        let _open = open;
        let clock = ConnClock::new();
        let io = GlommioIo::new(stream, Watch::new(clock.clone(), &ctx.deadlines, &ctx.api.connections));
        let svc = service_fn(move |req| {
            clock.busy();
            let served = crate::http::serve(ctx.clone(), req);
            let clock = clock.clone();
            async move {
                let r = served.await;
                clock.done();
                r
            }
        });
        if let Err(e) = http1::Builder::new().serve_connection(io, svc).await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    })
    .detach();
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A panic on a shard would leave a live process with a dead shard: its writers hang and its
/// pending flush is never acked. Better to stop at once and let the WAL replay on restart. A
/// panic elsewhere (a query task) stays contained in its task, as tokio does by default.
fn abort_on_shard_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let on_shard = std::thread::current().name().is_some_and(|n| n.starts_with("weir-shard"));
        if on_shard {
            tracing::error!(%info, "a shard panicked; aborting so the WAL is replayed on restart");
            std::process::abort();
        }
    }));
}

/// Past a file-size limit (`ulimit -f`) a write fails with EFBIG, and the kernel also sends
/// SIGXFSZ, whose default kills the process. Ignored, the failed write is handled as the disk
/// error it is (the WAL refuses the write and its shard stops taking writes) instead of the
/// server dying with requests in flight.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread depends on it.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Colour codes only for a person at a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
