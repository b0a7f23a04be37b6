//! Reading a request body within its cap, and within the gateway-wide budget for the bodies of
//! all requests in flight.
//!
//! A body is refused at its cap (413) holding at most the cap plus a small constant: the buffer
//! is sized from `Content-Length` when there is one; a chunked body grows by doubling up to
//! [`GROW_BY_DOUBLING`] and then takes the rest of the cap in one allocation, whose pages only
//! become resident as bytes are written into them (so there is never a second, larger copy
//! while the first is still held).
//!
//! The buffer's capacity counts against the gateway-wide in-flight budget ([`BodyBudget`]) while
//! the body is read, and its length for as long as the request lives after that. Counting the
//! capacity (a large chunked upload holds a whole cap's worth while it arrives) keeps the budget
//! a bound on memory rather than on bytes received so far. A body that does not fit is refused
//! with a 503 `server_busy` and `Retry-After: 1`: it is the gateway that is full, not the request
//! that is wrong.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::GatewayError;

/// Up to this size a chunked body's buffer doubles; past it, it takes the rest of the cap at
/// once (one copy of at most this much, instead of copies of half the cap).
const GROW_BY_DOUBLING: usize = 1 << 20;

/// The bytes of request bodies held by requests in flight, gateway-wide (`Services::bodies`).
pub(crate) type BodyBudget = AtomicUsize;

/// Bytes of one request's body counted against the [`BodyBudget`]; released when dropped (when
/// the request, or its stream, ends).
#[derive(Debug)]
pub(crate) struct BodyPermit {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyPermit {
    /// An empty permit.
    pub fn new(budget: &Arc<BodyBudget>) -> Self {
        BodyPermit {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Counts up to `total` bytes, unless the budget's `limit` would be passed.
    fn reserve_to(&mut self, total: usize, limit: usize) -> Result<(), GatewayError> {
        match total.checked_sub(self.bytes) {
            Some(more) if more > 0 => self.grow(more, limit),
            _ => Ok(()),
        }
    }

    /// Counts only `total` bytes from now on (the body is read; what it did not use goes back).
    fn shrink_to(&mut self, total: usize) {
        if let Some(less) = self.bytes.checked_sub(total) {
            self.budget.fetch_sub(less, Ordering::AcqRel);
            self.bytes = total;
        }
    }

    /// Counts `more` bytes, unless the budget's `limit` would be passed.
    fn grow(&mut self, more: usize, limit: usize) -> Result<(), GatewayError> {
        let taken = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(more).filter(|after| *after <= limit)
            });
        match taken {
            Ok(_) => {
                self.bytes += more;
                Ok(())
            }
            Err(_) => Err(GatewayError::BodiesInFlight { limit }),
        }
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads the body up to `limit` bytes (a declared or actual larger body is a 413), counting it
/// against `budget` up to `budget_limit` bytes for all requests (past it, a 503). The returned
/// permit holds the body's bytes in the budget until it is dropped.
pub(crate) async fn read(
    req: Request<Incoming>,
    limit: usize,
    budget: &Arc<BodyBudget>,
    budget_limit: usize,
) -> Result<(Bytes, BodyPermit), GatewayError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let mut permit = BodyPermit::new(budget);
    let mut body = req.into_body();
    let declared = declared.map_or(0, |len| len as usize);
    // A declared length is held from the start: refused at once when it does not fit.
    permit.reserve_to(declared, budget_limit)?;
    let mut buf: Vec<u8> = Vec::with_capacity(declared);
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
                let grown = if needed <= GROW_BY_DOUBLING {
                    needed.max(buf.capacity() * 2).min(GROW_BY_DOUBLING)
                } else {
                    limit
                };
                permit.reserve_to(grown, budget_limit)?;
                buf.reserve_exact(grown - buf.len());
            }
            buf.extend_from_slice(&data);
        }
    }
    permit.shrink_to(buf.len());
    Ok((Bytes::from(buf), permit))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_against_the_budget_until_dropped() {
        let budget = Arc::new(BodyBudget::default());
        let held = |b: &BodyBudget| b.load(Ordering::Relaxed);
        let mut a = BodyPermit::new(&budget);
        a.grow(600, 1000).unwrap();
        let mut b = BodyPermit::new(&budget);
        assert!(matches!(
            b.grow(500, 1000),
            Err(GatewayError::BodiesInFlight { limit: 1000 })
        ));
        b.grow(400, 1000).unwrap();
        assert_eq!(held(&budget), 1000);
        b.shrink_to(100);
        assert_eq!(held(&budget), 700);
        b.reserve_to(50, 1000).unwrap();
        assert_eq!(held(&budget), 700, "never less than held");
        drop(a);
        assert_eq!(held(&budget), 100);
        drop(b);
        assert_eq!(held(&budget), 0);
    }
}
