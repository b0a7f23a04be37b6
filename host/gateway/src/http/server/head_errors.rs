//! Error bodies for the responses hyper writes by itself.
//!
//! When hyper cannot read a request head (headers over the size or count limit, a NUL in a
//! header, two different `Content-Length`s, a malformed request line) it answers before any
//! handler runs, with a bare `431`, `400` or `414` and no body, and closes the connection. There
//! is no hook for that response, so [`ErrorBodies`] wraps the connection: on the write side it
//! follows the framing of the HTTP/1 responses going out (heads, `Content-Length` and chunked
//! bodies) and replaces a bodyless error head with the same status and a JSON error body in
//! OpenAI's shape, or Anthropic's when the request line it answers was for `/v1/messages` (the
//! read side remembers the last request line it saw). Every response the gateway builds has a
//! `Content-Type`, so a head without one and with `Content-Length: 0` can only be hyper's own.
//! Anything it cannot follow (HTTP/2, a body without a length) it passes through untouched for
//! the rest of the connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use switchyard_upstream::dialect::Api;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::GatewayError;

/// Longest response head followed; anything longer is passed through.
const MAX_HEAD: usize = 16 << 10;
/// Longest request line remembered.
const MAX_LINE: usize = 8 << 10;

/// A connection whose bodyless automatic error responses get a JSON body.
pub(crate) struct ErrorBodies<T> {
    inner: T,
    write: Write,
    /// Bytes owed to the connection (a head held back until it was whole), and how far they
    /// went out.
    pending: Vec<u8>,
    sent: usize,
    read: Lines,
}

impl<T> ErrorBodies<T> {
    pub fn new(inner: T) -> Self {
        ErrorBodies {
            inner,
            write: Write::Head(Vec::new()),
            pending: Vec::new(),
            sent: 0,
            read: Lines::default(),
        }
    }
}

/// Where the write side is in the response stream.
#[derive(Debug, PartialEq, Eq)]
enum Write {
    /// Collecting the next response's head.
    Head(Vec<u8>),
    /// In a body of this many more bytes.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunked),
    /// Not followed any more: everything passes through.
    Through,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading a size line; the size so far, and whether an extension started.
    Size(u64, bool),
    /// The `\n` ending a size line.
    SizeLf(u64),
    /// In chunk data, this much left.
    Data(u64),
    /// The `\r\n` after chunk data (bytes of it left).
    DataEnd(u8),
    /// After the last chunk: trailer lines; whether the current line is empty so far.
    Trailer(bool),
    /// The `\n` ending a trailer line; whether that line was empty.
    TrailerLf(bool),
}

impl Chunked {
    /// Advances over `bytes`; returns how many belong to the body (all of them, unless it
    /// ended inside them) and whether it ended.
    fn advance(&mut self, bytes: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            *self = match *self {
                Chunked::Size(n, ext) => match b {
                    b'\r' => Chunked::SizeLf(n),
                    b';' => Chunked::Size(n, true),
                    _ if ext => Chunked::Size(n, true),
                    _ => {
                        let digit = (b as char).to_digit(16).unwrap_or(0);
                        Chunked::Size(n.saturating_mul(16) + u64::from(digit), false)
                    }
                },
                Chunked::SizeLf(0) => Chunked::Trailer(true),
                Chunked::SizeLf(n) => Chunked::Data(n),
                Chunked::Data(n) => {
                    let take = (n.min((bytes.len() - i) as u64)) as usize;
                    i += take;
                    *self = if take as u64 == n {
                        Chunked::DataEnd(2)
                    } else {
                        Chunked::Data(n - take as u64)
                    };
                    continue;
                }
                Chunked::DataEnd(2) => Chunked::DataEnd(1),
                Chunked::DataEnd(_) => Chunked::Size(0, false),
                Chunked::Trailer(empty) => match b {
                    b'\r' => Chunked::TrailerLf(empty),
                    _ => Chunked::Trailer(false),
                },
                Chunked::TrailerLf(true) => return (i + 1, true),
                Chunked::TrailerLf(false) => Chunked::Trailer(true),
            };
            i += 1;
        }
        (bytes.len(), false)
    }
}

/// What a whole response head says about what follows it.
#[cfg_attr(test, derive(Debug, PartialEq))]
enum Next {
    /// A bodyless error hyper wrote: replace it.
    Replace(u16, Option<String>),
    Length(u64),
    Chunked,
    /// No body (1xx, 204, 304, or `Content-Length: 0`): the next head follows.
    Head,
    /// A body this side cannot follow.
    Through,
}

/// Reads a whole response head. It runs on every response the gateway sends, so it walks the
/// head's lines once with `memchr` and looks only at lines that can be one of the four headers
/// it needs, by their first byte; splitting the text on `"\r\n"` and comparing every header's
/// name four times cost as many instructions as parsing the request (`BENCHMARKS.md`).
fn judge(head: &[u8]) -> Next {
    let Ok(text) = std::str::from_utf8(head) else {
        return Next::Through;
    };
    let mut lines = crlf_lines(text);
    let Some(status) = lines.next().and_then(status_of) else {
        return Next::Through;
    };
    // The first letters of `content-length`, `content-type`, `transfer-encoding` and `date`.
    let wanted = |first: u8| matches!(first.to_ascii_lowercase(), b'c' | b't' | b'd');
    let mut headers = Headers::default();
    for line in lines {
        if line.trim_start().bytes().next().is_some_and(wanted) {
            headers.read(line);
        }
    }
    headers.verdict(status)
}

/// The status of a status line (`HTTP/1.1 200 OK`).
fn status_of(line: &str) -> Option<u16> {
    line.split(' ').nth(1)?.parse().ok()
}

/// What the headers of a response head say about its body.
#[derive(Default)]
struct Headers<'a> {
    length: Option<u64>,
    chunked: bool,
    typed: bool,
    date: Option<&'a str>,
}

impl<'a> Headers<'a> {
    fn read(&mut self, line: &'a str) {
        let Some((name, value)) = line.split_once(':') else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            self.length = value.parse::<u64>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.chunked = value
                .as_bytes()
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("content-type") {
            self.typed = true;
        } else if name.eq_ignore_ascii_case("date") {
            self.date = Some(value);
        }
    }

    fn verdict(self, status: u16) -> Next {
        if matches!(status, 400 | 414 | 431) && !self.typed && self.length == Some(0) {
            return Next::Replace(status, self.date.map(str::to_owned));
        }
        match (status, self.length, self.chunked) {
            (100..=199 | 204 | 304, _, _) | (_, Some(0), false) => Next::Head,
            (_, _, true) => Next::Chunked,
            (_, Some(n), false) => Next::Length(n),
            _ => Next::Through,
        }
    }
}

/// The pieces of `text` between `"\r\n"`s, as `text.split("\r\n")` gives them.
fn crlf_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memmem::find_iter(text.as_bytes(), b"\r\n")
        .chain(std::iter::once(text.len()))
        .map(move |end| {
            let line = &text[start..end];
            start = end + 2;
            line
        })
}

/// The response that replaces hyper's bare one: the same status, with a body.
fn replacement(status: u16, date: Option<&str>, api: Api) -> Vec<u8> {
    let (code, message) = match status {
        431 => (
            "request_header_too_large",
            "the request's headers are too large or too many for this server",
        ),
        414 => ("uri_too_long", "the request's URI is too long"),
        _ => (
            "invalid_request",
            "the request's head could not be read: a malformed request line or header (an invalid byte such as NUL, or conflicting Content-Length headers)",
        ),
    };
    let err = GatewayError::BadHead {
        status,
        code,
        message,
    };
    let body: Bytes = match api {
        Api::Messages => err.to_anthropic_body(),
        _ => err.to_body(),
    };
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The read side: the API of the last request line seen.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    overflow: bool,
    api: Option<Api>,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            self.push(&rest[..nl]);
            if !self.overflow {
                self.request_line();
            }
            self.line.clear();
            self.overflow = false;
            rest = &rest[nl + 1..];
        }
        self.push(rest);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overflow || self.line.len() + bytes.len() > MAX_LINE {
            self.overflow = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// Remembers the path of a request line (`METHOD /path HTTP/1.x`).
    fn request_line(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        let mut parts = line.split(|b| *b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if method.is_empty()
            || !method.iter().all(u8::is_ascii_uppercase)
            || !version.starts_with(b"HTTP/1.")
        {
            return;
        }
        let path = target.split(|b| *b == b'?').next().unwrap_or_default();
        self.api = Some(if path.starts_with(b"/v1/messages") {
            Api::Messages
        } else {
            Api::Chat
        });
    }
}

impl<T: AsyncWrite + Unpin> ErrorBodies<T> {
    /// Writes out what is owed.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes the owed head together with the body bytes that follow it in `bufs` (`taken`
    /// bytes into the first), and says how many of `bufs`' bytes are done with: the head's, and
    /// the body's that went out. Whatever of the head did not go out stays owed.
    fn poll_head_and_body(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        taken: usize,
    ) -> Poll<io::Result<usize>> {
        let mut rest: Vec<&[u8]> = Vec::with_capacity(bufs.len());
        rest.push(&bufs[0][taken..]);
        rest.extend(bufs[1..].iter().map(|b| &b[..]));
        let available: usize = rest.iter().map(|b| b.len()).sum();
        let part = self.body_part(available, &rest);
        let body = prefix_of(&rest, part);
        let owed = self.pending.len() - self.sent;
        let mut slices = Vec::with_capacity(1 + body.len());
        slices.push(IoSlice::new(&self.pending[self.sent..]));
        slices.extend(body.iter().map(|b| IoSlice::new(b)));
        let written = match Pin::new(&mut self.inner).poll_write_vectored(cx, &slices) {
            // The head is ours to send either way; the body waits for hyper's next write.
            Poll::Pending => return Poll::Ready(Ok(taken)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => n,
        };
        if written < owed {
            self.sent += written;
            return Poll::Ready(Ok(taken));
        }
        self.pending.clear();
        self.sent = 0;
        let body_written = written - owed;
        self.wrote(&prefix_of(&body, body_written));
        Poll::Ready(Ok(taken + body_written))
    }

    /// Takes head bytes from `buf`: returns how many were taken. Once the head is whole, it (or
    /// its replacement) is owed to the connection.
    fn take_head(&mut self, buf: &[u8]) -> usize {
        let Write::Head(head) = &mut self.write else {
            return 0;
        };
        let before = head.len();
        head.extend_from_slice(&buf[..buf.len().min((MAX_HEAD + 4).saturating_sub(before))]);
        let prefix = b"HTTP/1.";
        let n = head.len().min(prefix.len());
        if head[..n] != prefix[..n] || head.len() > MAX_HEAD {
            // Not an HTTP/1 response head this side can follow (HTTP/2 frames, say).
            let taken = head.len() - before;
            self.give_up();
            return taken;
        }
        let Some(end) = memchr::memmem::find(head, b"\r\n\r\n") else {
            return head.len() - before;
        };
        let end = end + 4;
        let taken = end - before;
        head.truncate(end);
        let head = std::mem::take(head);
        self.write = match judge(&head) {
            Next::Replace(status, date) => {
                let api = self.read.api.unwrap_or(Api::Chat);
                self.pending
                    .extend(replacement(status, date.as_deref(), api));
                // Hyper closes the connection after it; nothing follows.
                Write::Through
            }
            next => {
                self.pending.extend_from_slice(&head);
                match next {
                    Next::Length(n) => Write::Length(n),
                    Next::Chunked => Write::Chunked(Chunked::Size(0, false)),
                    Next::Head => Write::Head(Vec::new()),
                    Next::Replace(..) | Next::Through => Write::Through,
                }
            }
        };
        taken
    }

    /// Stops following the responses: a head held so far is owed as it is.
    fn give_up(&mut self) {
        if let Write::Head(head) = &mut self.write {
            self.pending.append(head);
        }
        self.write = Write::Through;
    }

    /// How many of `bytes` belong to the current body (so a write never runs into the next
    /// head unread), and what follows it.
    fn body_part(&self, bytes: usize, peek: &[&[u8]]) -> usize {
        match &self.write {
            Write::Length(n) => (*n).min(bytes as u64) as usize,
            Write::Chunked(state) => {
                let mut state = *state;
                let mut total = 0;
                for slice in peek {
                    let (used, ended) = state.advance(slice);
                    total += used;
                    if ended {
                        return total;
                    }
                }
                total
            }
            _ => bytes,
        }
    }

    /// Moves the body state over `written` bytes that went out.
    fn wrote(&mut self, written: &[&[u8]]) {
        match &mut self.write {
            Write::Length(n) => {
                let total: usize = written.iter().map(|s| s.len()).sum();
                *n -= total as u64;
                if *n == 0 {
                    self.write = Write::Head(Vec::new());
                }
            }
            Write::Chunked(state) => {
                for slice in written {
                    if state.advance(slice).1 {
                        self.write = Write::Head(Vec::new());
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The first `n` bytes of `slices`.
fn prefix_of<'a>(slices: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for b in slices {
        if n == 0 {
            break;
        }
        let take = b.len().min(n);
        out.push(&b[..take]);
        n -= take;
    }
    out
}

/// The first `n` bytes of `bufs`, as slices.
fn prefix<'a>(bufs: &'a [IoSlice<'a>], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for b in bufs {
        if n == 0 {
            break;
        }
        let take = b.len().min(n);
        out.push(&b[..take]);
        n -= take;
    }
    out
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodies<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        this.read.feed(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if let Write::Head(_) = this.write {
            let at = bufs.iter().position(|b| !b.is_empty()).unwrap_or(0);
            let taken = this.take_head(&bufs[at]);
            if matches!(this.write, Write::Length(_) | Write::Chunked(_)) {
                // A whole head, passed on as it is, and hyper's buffers hold its body (or the
                // start of it) too: both leave in one write. Written apart, the head and the
                // body cost a second system call and a second wake-up of the peer per response
                // (BENCHMARKS.md).
                return this.poll_head_and_body(cx, &bufs[at..], taken);
            }
            // What was taken is owed; try to send it now, but it is ours to send either way.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(taken));
        }
        if this.write == Write::Through {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let slices: Vec<&[u8]> = bufs.iter().map(|b| &b[..]).collect();
        let part = this.body_part(total, &slices);
        if part == 0 {
            // The body ended exactly before these bytes: they start the next head.
            this.write = Write::Head(Vec::new());
            return self.poll_write_vectored(cx, bufs);
        }
        let written = if part == total {
            ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?
        } else {
            let limited: Vec<IoSlice<'_>> =
                prefix(bufs, part).into_iter().map(IoSlice::new).collect();
            ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &limited))?
        };
        this.wrote(&prefix(bufs, written));
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if matches!(&self.write, Write::Head(h) if !h.is_empty()) {
            // A flush in the middle of a head: hyper never does this, but if it did, nothing may
            // be held back; the rest of the connection passes through.
            self.give_up();
        }
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn through(writes: &[&[u8]], read: &[u8]) -> String {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut wrapped = ErrorBodies::new(server);
        wrapped.read.feed(read);
        for w in writes {
            wrapped.write_all(w).await.unwrap();
        }
        wrapped.flush().await.unwrap();
        drop(wrapped);
        let mut out = String::new();
        let mut client = client;
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut out)
            .await
            .unwrap();
        out
    }

    #[tokio::test]
    async fn hypers_bare_errors_get_a_json_body_in_the_requests_shape() {
        let bare: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out = through(&[bare], b"POST /v1/chat/completions HTTP/1.1\r\nx: y").await;
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains("date: Tue, 01 Dec 2026"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_header_too_large");
        let out = through(&[bare], b"POST /v1/messages HTTP/1.1\r\nx: y").await;
        let v: serde_json::Value =
            serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn responses_the_gateway_wrote_pass_through_untouched() {
        let json: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\nHTTP/\r\n0\r\n\r\n";
        let bare: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let out = through(&[json, chunked, bare], b"").await;
        let expected_start = [json, chunked].concat();
        assert!(out.as_bytes().starts_with(&expected_start), "{out}");
        let last = &out[expected_start.len()..];
        assert!(
            last.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type"),
            "{last}"
        );
        assert!(last.contains("\"code\":\"invalid_request\""), "{last}");
        // Written in small pieces, the same.
        let all = [json, chunked].concat();
        let pieces: Vec<&[u8]> = all.chunks(3).collect();
        assert_eq!(through(&pieces, b"").await.as_bytes(), &all[..]);
    }

    /// Records every write it gets (the bytes of each call), taking at most `limit` bytes a call.
    struct Writes {
        calls: Vec<Vec<u8>>,
        limit: usize,
    }

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.limit);
            self.calls.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_head_and_its_body_leave_in_one_write() {
        let head: &[u8] =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n";
        let (body, next) = (
            &b"{\"ok\":true}"[..],
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        );
        let mut wrapped = ErrorBodies::new(Writes {
            calls: Vec::new(),
            limit: usize::MAX,
        });
        let bufs = [IoSlice::new(head), IoSlice::new(body), IoSlice::new(next)];
        let n = wrapped.write_vectored(&bufs).await.unwrap();
        assert_eq!(
            n,
            head.len() + body.len(),
            "the head and its body, not the next head"
        );
        assert_eq!(wrapped.inner.calls, [[head, body].concat()], "one write");
        // A connection that takes a few bytes at a time still gets every byte once, in order.
        let mut wrapped = ErrorBodies::new(Writes {
            calls: Vec::new(),
            limit: 7,
        });
        let all = [head, body, next].concat();
        wrapped.write_all(&all).await.unwrap();
        wrapped.flush().await.unwrap();
        assert_eq!(wrapped.inner.calls.concat(), all);
    }

    /// What `judge` read before it skipped lines by their first byte: every line split on
    /// `"\r\n"` and every one read.
    fn judge_by_splitting(head: &[u8]) -> Next {
        let Ok(text) = std::str::from_utf8(head) else {
            return Next::Through;
        };
        let mut lines = text.split("\r\n");
        let Some(status) = lines.next().and_then(status_of) else {
            return Next::Through;
        };
        let mut headers = Headers::default();
        lines.for_each(|line| headers.read(line));
        headers.verdict(status)
    }

    proptest::proptest! {
        /// Heads made of the pieces that matter (the four headers in any case, spacing and
        /// order, odd whitespace, stray `\r` and `\n`, a status of any shape) read alike.
        #[test]
        fn judge_reads_heads_as_splitting_them_did(
            status in proptest::sample::select(vec![
                "HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request", "HTTP/1.1 431 x", "HTTP/1.1 414",
                "HTTP/1.1 204 No Content", "HTTP/1.1 101 Switching", "HTTP/1.0 304", "HTTP/1.1  200",
                "HTTP/1.1 abc", "garbage",
            ]),
            lines in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "content-length", "Content-Length", " content-length ", "content-type",
                        "CONTENT-TYPE", "transfer-encoding", "Transfer-Encoding", "date", "Date",
                        "x-switchyard-model", "connection", "\u{3000}date", "d", "c", "t", "",
                    ]),
                    proptest::sample::select(vec![
                        "0", " 0", "12", "\u{a0}7", "chunked", "gzip, Chunked", "x", "",
                        "Tue, 01 Dec 2026 22:00:00 GMT",
                    ]),
                    proptest::sample::select(vec![":", ": ", " : ", "", ":\r", "\n:"]),
                ),
                0..8,
            ),
        ) {
            let mut head = status.to_owned();
            for (name, value, colon) in lines {
                head.push_str("\r\n");
                head.push_str(name);
                head.push_str(colon);
                head.push_str(value);
            }
            head.push_str("\r\n\r\n");
            proptest::prop_assert_eq!(judge(head.as_bytes()), judge_by_splitting(head.as_bytes()));
        }
    }

    #[test]
    fn chunked_bodies_are_followed_to_their_end() {
        let mut c = Chunked::Size(0, false);
        let body = b"a;ext=1\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\nHTTP";
        let (used, ended) = c.advance(body);
        assert!(ended);
        assert_eq!(&body[used..], b"HTTP");
    }
}
