//! Serving the app over HTTP/1.1 with bounds on what a connection may hold (`herald serve` uses
//! this instead of `axum::serve`, which has none):
//!
//! - **Header read timeout** ([`HttpLimits::header_read_timeout`]): a request's headers must
//!   arrive within it, counted from when Herald is ready for the request (a new connection, or
//!   the previous response sent): half-sent requests (slowloris) and idle keep-alive connections
//!   are closed after it.
//! - **Idle timeout** ([`HttpLimits::idle_timeout`]): a connection on which no byte moves either
//!   way for this long is closed (a request body trickled in, a response nobody reads).
//! - **Connection cap** ([`HttpLimits::max_connections`]): at most this many connections are
//!   open. When a new one arrives at the cap, the connection idle the longest (one without a
//!   request being answered: waiting for headers, or kept alive between requests) is closed to
//!   make room, so half-open connections cannot lock people out; if every connection is busy
//!   answering, the new one waits in the listen backlog until one ends. The cap is also kept
//!   below the process's open-file limit, so `accept` never fails for lack of descriptors.
//!
//! Each request carries the peer's address as axum's `ConnectInfo<SocketAddr>` (see
//! [`crate::web::limits::ClientAddr`]).

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// Bounds on HTTP connections (`[http]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// File descriptors kept for everything but HTTP connections (database, logs, SMTP, files).
const RESERVED_FDS: u64 = 64;

/// `max_connections`, lowered to fit the open-file limit (with a warning) when it does not.
fn effective_cap(wanted: usize) -> usize {
    let wanted = wanted.max(1);
    #[cfg(unix)]
    {
        use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
        if let Ok((mut soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let need = wanted as u64 + RESERVED_FDS;
            if soft != RLIM_INFINITY && soft < need {
                // Raise the soft limit as far as the hard one allows.
                let raised = need.min(hard);
                if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
                    soft = raised;
                }
            }
            if soft != RLIM_INFINITY && soft < need {
                let cap = soft.saturating_sub(RESERVED_FDS).max(1) as usize;
                tracing::warn!(
                    max_connections = wanted,
                    open_file_limit = soft,
                    cap,
                    "http.max_connections does not fit the open-file limit (ulimit -n): serving at most {cap} connections"
                );
                return cap;
            }
        }
    }
    wanted
}

// ---------------------------------------------------------------- connections

/// Milliseconds since the server started: the clock of [`Conn::last_active`].
fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One open connection, as the accept loop and its task see it.
struct Conn {
    /// Requests being answered (until their response body is sent or dropped).
    busy: AtomicUsize,
    /// When a byte last moved, in [`millis_since`] the server's start.
    last_active: AtomicU64,
    /// Set when the connection is chosen to make room; its task closes it.
    evicted: AtomicBool,
    evict: Notify,
}

#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the connection idle the longest, if one is idle: whether one was.
    fn evict_oldest_idle(&self) -> bool {
        let conns = self.lock();
        let victim = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| c.last_active.load(Ordering::Acquire));
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Release);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Counts a request as being answered until dropped (with its response body).
struct BusyGuard(Arc<Conn>);

impl BusyGuard {
    fn new(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as busy until it is sent.
struct GuardedBody {
    inner: axum::body::Body,
    _guard: BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A TCP stream that records when a byte last moved.
struct Tracked {
    io: TcpStream,
    conn: Arc<Conn>,
    start: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.conn
            .last_active
            .store(millis_since(self.start), Ordering::Release);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// ---------------------------------------------------------------- serving

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; then stops accepting,
/// lets requests in flight finish (idle connections are closed) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = effective_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let start = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        // A slot for it: at the cap, close the connection idle the longest; if none is idle,
        // wait for one to end (later connections wait in the listen backlog meanwhile).
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let freed = async {
                    loop {
                        registry.evict_oldest_idle();
                        tokio::select! {
                            p = slots.clone().acquire_owned() => {
                                if let Ok(p) = p { return p; }
                            }
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                };
                tokio::select! {
                    p = freed => p,
                    () = shutdown.as_mut() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            last_active: AtomicU64::new(millis_since(start)),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        registry.lock().insert(id, conn.clone());
        let io = TokioIo::new(Tracked {
            io: stream,
            conn: conn.clone(),
            start,
        });
        let router = app.clone();
        let svc_conn = conn.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let guard = BusyGuard::new(svc_conn.clone());
            let fut = router.clone().oneshot(req);
            async move {
                let res = fut.await?;
                Ok::<_, std::convert::Infallible>(res.map(|inner| GuardedBody {
                    inner,
                    _guard: guard,
                }))
            }
        });
        let builder = builder.clone();
        let registry = registry.clone();
        let mut stop = stop_rx.clone();
        let idle = limits.idle_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let mut http = std::pin::pin!(builder.serve_connection(io, service));
            let mut stopping = false;
            let check = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            loop {
                tokio::select! {
                    res = http.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "http connection ended");
                        }
                        break;
                    }
                    () = conn.evict.notified() => {
                        tracing::debug!("http connection closed to make room (connection cap)");
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        if changed.is_err() || *stop.borrow() {
                            stopping = true;
                            http.as_mut().graceful_shutdown();
                        }
                    }
                    () = tokio::time::sleep(check) => {
                        let quiet = millis_since(start)
                            .saturating_sub(conn.last_active.load(Ordering::Acquire));
                        if Duration::from_millis(quiet) >= idle {
                            tracing::debug!("http connection closed: idle timeout");
                            break;
                        }
                    }
                }
            }
            registry.lock().remove(&id);
        });
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
