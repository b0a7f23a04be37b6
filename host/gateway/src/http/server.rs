//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 (auto-detected), bounded
//! request heads (refused with a JSON error body, see [`head_errors`]), and a graceful drain on
//! shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::pipeline;
use crate::response::ResponseBody;
use crate::services::Services;

mod head_errors;

use head_errors::ErrorBodies;

/// Serves the main (OpenAI-compatible) listener until `shutdown` turns true, then drains:
/// readiness turns false, no new connections are accepted, in-flight requests finish, and open
/// streams get until the drain timeout before they are ended with an SSE error event.
pub async fn serve(listener: TcpListener, shared: Arc<Services>, shutdown: watch::Receiver<bool>) {
    serve_with(listener, shared, shutdown, pipeline::handle, true).await
}

/// Serves `listener` with `handler` until `shutdown` turns true, then drains open connections
/// for up to the configured drain timeout.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    shared: Arc<Services>,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
    drains: bool,
) where
    H: Fn(Arc<Services>, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let (max_header_bytes, drain_timeout) = {
        let s = shared.live.snapshot.load();
        (
            s.config.server.max_header_bytes,
            s.config.server.drain_timeout,
        )
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(max_header_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .max_header_list_size(max_header_bytes as u32)
        .timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let service = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(shared, req).await) }
                });
                // Hyper's own answers to unreadable request heads get a JSON error body.
                let io = TokioIo::new(ErrorBodies::new(stream));
                let conn = builder.serve_connection_with_upgrades(io, service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if !drains {
        return;
    }
    shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        ?drain_timeout,
        "shutting down: not accepting; draining in-flight requests and streams"
    );
    let mut closed = std::pin::pin!(graceful.shutdown());
    tokio::select! {
        _ = &mut closed => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(?drain_timeout, "drain timeout reached; ending open streams with an error event");
            let _ = shared.drain_expired.send(true);
            // Give the streams a moment to write their last event.
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
    }
}
