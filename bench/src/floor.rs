//! The floor: the thinnest proxy hyper and tokio allow (accept, read the body, forward it with a
//! pooled `hyper_util` client, stream the answer back), with none of Switchyard's work. Its cost
//! next to nginx's and Switchyard's separates what the HTTP stack costs from what the gateway adds.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Serves on `listen`, forwarding every request to `upstream` (scheme, host and port).
pub async fn serve(listen: SocketAddr, upstream: Uri) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("floor proxy listening on {}", listener.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                    parts.uri = format!("{upstream}{}", path.trim_start_matches('/')).parse()?;
                    parts.headers.remove(http::header::HOST);
                    let response = client
                        .request(Request::from_parts(parts, Full::new(body)))
                        .await?;
                    anyhow::Ok(response.map(|b| b.boxed()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
