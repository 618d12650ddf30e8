//! Serving the app over HTTP/1.1 with bounds on what a connection may hold (`herald serve` uses
//! this instead of `axum::serve`, which has none):
//!
//! - **Header read timeout** ([`HttpLimits::header_read_timeout`]): a request's headers must
//!   arrive within it, counted from when Herald is ready for the request (a new connection, or
//!   the previous response sent): half-sent requests (slowloris) and idle keep-alive connections
//!   are closed after it. Checked by the connection's task every quarter of the shorter of the
//!   two timeouts (so within 1.25 times it), not by a timer per request.
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
//!
//! **Lean event streams.** A chat visitor's event stream (`GET
//! /chat/v1/sites/{key}/conversations/events`) stays open as long as the page does, and a busy
//! site has thousands. hyper keeps two 8 KiB buffers for every connection for its whole life;
//! so a connection whose first request is such a stream, with its head complete in its first
//! packet (as a browser's `EventSource` sends it), is answered here instead: its head is parsed
//! from a peek (at most [`PEEK_MAX`] bytes, freed once read), the app answers it as any request,
//! and its body is written with chunked encoding straight to the socket, after which the
//! connection closes (`Connection: close`). The same bounds hold: the header read timeout for
//! the first byte, the idle timeout for each write (a stream writes a keep-alive every 15 s, so
//! only a visitor who stops reading meets it), shutdown. Every other connection goes to hyper
//! untouched.

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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
    /// When it last became ready for a request (opened, or its last answer sent), in
    /// [`millis_since`] the server's start: the header read timeout counts from here.
    ready_since: AtomicU64,
    /// The server's start, the origin of the two instants above.
    start: Instant,
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
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0
                .ready_since
                .store(millis_since(self.0.start), Ordering::Release);
        }
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

// ---------------------------------------------------------------- lean event streams

/// The most bytes of a connection's first packet read to see whether it opens a lean stream.
pub const PEEK_MAX: usize = 4096;
/// The most headers such a request may have (more: hyper answers it).
const LEAN_HEADERS_MAX: usize = 32;

/// How a connection begins.
enum First {
    /// Nothing came within the header read timeout, or it closed, or it was evicted.
    Closed,
    /// A lean stream's request, its head already read off the socket (boxed: the connection's
    /// task holds this enum for its whole life).
    Lean(Box<hyper::Request<axum::body::Body>>),
    /// Anything else: for hyper, with nothing read.
    Other,
}

/// Whether `path` (without its query) is served as a lean stream.
fn lean_path(path: &str) -> bool {
    crate::routes::chat_live::is_events_path(path)
}

/// Peeks at the first packet of `stream`; reads it off only when it is a lean stream's
/// complete head.
async fn first_request(stream: &mut TcpStream) -> First {
    const PREFIX: &[u8] = b"GET /chat/";
    let mut buf = vec![0u8; PEEK_MAX];
    let n = match stream.peek(&mut buf).await {
        Ok(0) | Err(_) => return First::Closed,
        Ok(n) => n,
    };
    if !buf[..n].starts_with(PREFIX) {
        return First::Other;
    }
    let Some((len, req)) = lean_head(&buf[..n]) else {
        return First::Other;
    };
    // The head is in the socket's buffer already: this read does not wait.
    match stream.read_exact(&mut buf[..len]).await {
        Ok(_) => First::Lean(Box::new(req)),
        Err(_) => First::Closed,
    }
}

/// A complete `GET` head of a lean stream at the start of `bytes`: its length and the request.
fn lean_head(bytes: &[u8]) -> Option<(usize, hyper::Request<axum::body::Body>)> {
    let mut headers = [httparse::EMPTY_HEADER; LEAN_HEADERS_MAX];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    if parsed.method != Some("GET") || parsed.version != Some(1) {
        return None;
    }
    let target = parsed.path?;
    if !lean_path(target.split('?').next().unwrap_or(target)) {
        return None;
    }
    let mut req = hyper::Request::builder()
        .method(hyper::Method::GET)
        .uri(target)
        .version(hyper::Version::HTTP_11);
    for h in parsed.headers.iter() {
        let name = hyper::header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A body, or an upgrade, is not for this path.
        if [
            hyper::header::CONTENT_LENGTH,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::UPGRADE,
            hyper::header::EXPECT,
        ]
        .contains(&name)
        {
            return None;
        }
        req = req.header(name, hyper::header::HeaderValue::from_bytes(h.value).ok()?);
    }
    Some((len, req.body(axum::body::Body::empty()).ok()?))
}

/// The status line and headers of `res` as sent on a lean stream: chunked, then closed.
// `Date` is the transport's wall clock, as hyper writes it for every other answer; no business
// time is read here.
#[allow(clippy::disallowed_methods)]
fn lean_response_head(res: &hyper::Response<axum::body::Body>) -> Vec<u8> {
    use std::io::Write;
    let mut head = Vec::with_capacity(512);
    let status = res.status();
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in res.headers() {
        if [
            hyper::header::CONTENT_LENGTH,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::CONNECTION,
            hyper::header::DATE,
        ]
        .contains(name)
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        head,
        "date: {}\r\nconnection: close\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    if !(status.is_informational()
        || status == hyper::StatusCode::NO_CONTENT
        || status == hyper::StatusCode::NOT_MODIFIED)
    {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The app's answer to a lean stream's request, counted as busy until its body is sent.
async fn answer_lean(
    app: Router,
    mut req: hyper::Request<axum::body::Body>,
    peer: std::net::SocketAddr,
    conn: Arc<Conn>,
) -> (hyper::Response<axum::body::Body>, BusyGuard) {
    let busy = BusyGuard::new(conn);
    req.extensions_mut().insert(ConnectInfo(peer));
    let Ok(res) = app.oneshot(req).await;
    (res, busy)
}

/// Writes `bytes` to a lean stream, within `idle`: whether they were written.
async fn write_lean(io: &mut Tracked, bytes: &[u8], idle: Duration) -> bool {
    matches!(
        tokio::time::timeout(idle, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Writes a lean stream's answer: its head, then its body chunked until the body ends, the
/// visitor leaves, a write waits past `idle` or the server stops. An event stream writes a
/// keep-alive comment every 15 s, so a stream whose writes go through is never idle; one whose
/// visitor stops reading is closed by the write's timeout.
async fn pump_lean(
    mut io: Tracked,
    res: hyper::Response<axum::body::Body>,
    _busy: BusyGuard,
    mut stop: tokio::sync::watch::Receiver<bool>,
    idle: Duration,
) {
    use http_body_util::BodyExt;
    // What lives across this function's waits is what each idle stream costs: the answer's
    // parts are dropped before the first, and each write (with its timer) is boxed apart.
    let status = res.status();
    let head = lean_response_head(&res);
    let body = res.into_body();
    if !Box::pin(write_lean(&mut io, &head, idle)).await {
        return;
    }
    drop(head);
    if status.is_informational()
        || status == hyper::StatusCode::NO_CONTENT
        || status == hyper::StatusCode::NOT_MODIFIED
    {
        return;
    }
    let mut body = body;
    let mut eof = [0u8; 8];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // The visitor left (or sent something no stream expects): close.
            _ = io.io.read(&mut eof) => return,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    let _ = Box::pin(write_lean(&mut io, b"0\r\n\r\n", idle)).await;
                    return;
                }
                continue;
            }
        };
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    let mut chunk = Vec::with_capacity(data.len() + 12);
                    chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    if !Box::pin(write_lean(&mut io, &chunk, idle)).await {
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "event stream body failed");
                return;
            }
            None => {
                let _ = Box::pin(write_lean(&mut io, b"0\r\n\r\n", idle)).await;
                return;
            }
        }
    }
}

/// Takes a connection's id out of the registry when its task ends, however it ends.
struct Deregister {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Waits for a connection's first packet: within the header read timeout (as hyper would ask
/// of its first request's head), unless it is evicted or the server stops first.
async fn first_phase(
    stream: &mut TcpStream,
    conn: &Conn,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    header_read_timeout: Duration,
) -> First {
    tokio::select! {
        first = tokio::time::timeout(header_read_timeout, first_request(stream)) => {
            first.unwrap_or(First::Closed)
        }
        () = conn.evict.notified() => First::Closed,
        _ = stop.changed() => First::Closed,
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
    // No `header_read_timeout` of hyper's: it arms a timer for every request of a keep-alive
    // connection, which cost the widget's config route (herald-bench chat). `serve_hyper`
    // checks the same bound on the connection's own clock (`Conn::ready_since`).
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
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
            ready_since: AtomicU64::new(millis_since(start)),
            start,
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        registry.lock().insert(id, conn.clone());
        let app = app.clone();
        let builder = builder.clone();
        let registry = registry.clone();
        let mut stop = stop_rx.clone();
        // The task's own future is small and each phase is boxed apart, so that a lean
        // stream's task holds only what its streaming needs, not the largest phase.
        tasks.spawn(async move {
            let _permit = permit;
            let _gone = Deregister { registry, id };
            let mut stream = stream;
            let first = Box::pin(first_phase(
                &mut stream,
                &conn,
                &mut stop,
                limits.header_read_timeout,
            ))
            .await;
            let io = Tracked {
                io: stream,
                conn: conn.clone(),
                start,
            };
            match first {
                First::Closed => {}
                First::Lean(req) => {
                    io.touch();
                    let (res, busy) = Box::pin(answer_lean(app, *req, peer, conn)).await;
                    Box::pin(pump_lean(io, res, busy, stop, limits.idle_timeout)).await;
                }
                First::Other => {
                    Box::pin(serve_hyper(io, app, peer, builder, conn, stop, limits)).await;
                }
            }
        });
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection with hyper until it ends, is evicted, waits for a request's headers
/// past the header read timeout, idles past the idle timeout or the server stops (then
/// gracefully). Both timeouts are checked every quarter of the shorter one.
async fn serve_hyper(
    io: Tracked,
    app: Router,
    peer: std::net::SocketAddr,
    builder: Arc<hyper::server::conn::http1::Builder>,
    conn: Arc<Conn>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    limits: HttpLimits,
) {
    let idle = limits.idle_timeout;
    let header_read_timeout = limits.header_read_timeout;
    let svc_conn = conn.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let guard = BusyGuard::new(svc_conn.clone());
        let fut = app.clone().oneshot(req);
        async move {
            let res = fut.await?;
            Ok::<_, std::convert::Infallible>(res.map(|inner| GuardedBody {
                inner,
                _guard: guard,
            }))
        }
    });
    let mut http = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut stopping = false;
    let check = (idle.min(header_read_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5));
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
                let now = millis_since(conn.start);
                let quiet = now.saturating_sub(conn.last_active.load(Ordering::Acquire));
                if Duration::from_millis(quiet) >= idle {
                    tracing::debug!("http connection closed: idle timeout");
                    break;
                }
                // Waiting for a request (its headers, or a kept-alive connection's next one).
                let waiting = now.saturating_sub(conn.ready_since.load(Ordering::Acquire));
                if conn.busy.load(Ordering::Acquire) == 0
                    && Duration::from_millis(waiting) >= header_read_timeout
                {
                    tracing::debug!("http connection closed: no request within the header read timeout");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "/chat/v1/sites/abc/conversations/events?token=t";

    #[test]
    fn only_a_complete_bodiless_get_of_a_stream_is_taken_lean() {
        let head = format!("GET {STREAM} HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n\r\n");
        let (len, req) = lean_head(head.as_bytes()).expect("a stream's head");
        assert_eq!(len, head.len());
        assert_eq!(req.uri().query(), Some("token=t"));
        assert_eq!(req.headers()["origin"], "https://a.example");
        // A partial head, another route, another method or version, a body: hyper's.
        assert!(lean_head(&head.as_bytes()[..head.len() - 2]).is_none());
        for other in [
            "GET /chat/v1/sites/abc/config HTTP/1.1\r\n\r\n".to_string(),
            "GET /chat/v1/sites/a/b/conversations/events HTTP/1.1\r\n\r\n".to_string(),
            format!("POST {STREAM} HTTP/1.1\r\n\r\n"),
            format!("GET {STREAM} HTTP/1.0\r\n\r\n"),
            format!("GET {STREAM} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
            format!("GET {STREAM} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            format!("GET {STREAM} HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
            format!("GET {STREAM} HTTP/1.1\r\n{}\r\n", "X-A: 1\r\n".repeat(40)),
        ] {
            assert!(lean_head(other.as_bytes()).is_none(), "{other}");
        }
    }

    #[test]
    fn a_lean_answer_is_chunked_and_closes() {
        let res = hyper::Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("content-length", "5")
            .body(axum::body::Body::empty())
            .expect("response");
        let head = String::from_utf8(lean_response_head(&res)).expect("text");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("content-type: text/event-stream\r\n"),
            "{head}"
        );
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let not_modified = hyper::Response::builder()
            .status(304)
            .body(axum::body::Body::empty())
            .expect("response");
        let head = String::from_utf8(lean_response_head(&not_modified)).expect("text");
        assert!(!head.contains("transfer-encoding"), "{head}");
    }
}
