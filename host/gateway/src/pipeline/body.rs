//! Reading a request body within its cap.

use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::GatewayError;

/// Reads the body up to `limit` bytes; a declared or actual larger body is a 413. The buffer
/// grows to at most `limit` (doubling, then exactly to the cap), so a refused upload never holds
/// more than the cap; chunks are appended as they arrive and dropped at once.
pub(crate) async fn read(req: Request<Incoming>, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let mut body = req.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |len| len as usize).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if client_went_away(&e) {
                GatewayError::ClientGone
            } else {
                GatewayError::InvalidRequest {
                    message: format!("could not read the request body: {e}"),
                    param: None,
                }
            }
        })?;
        if let Ok(data) = frame.into_data() {
            let needed = buf.len() + data.len();
            if needed > limit {
                return Err(GatewayError::BodyTooLarge { limit });
            }
            if needed > buf.capacity() {
                let grown = needed.max(buf.capacity() * 2).min(limit);
                buf.reserve_exact(grown - buf.len());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Whether a body error means the client closed the connection (then nobody is there to read an
/// error response; the request is logged as 499), rather than sent something malformed (a 400).
fn client_went_away(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            );
        }
        source = s.source();
    }
    false
}
