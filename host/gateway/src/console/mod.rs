//! The web console, served by the admin listener at `/console`: where traffic went, what it
//! cost, and why each request was routed there. docs/console.md describes the pages.
//!
//! - Access: the login form exchanges the admin token for a session cookie ([`session`]); every
//!   write action also needs the session's CSRF token. The JSON API under `/console/api/` takes
//!   the admin token as a bearer token too (for scripts; no CSRF token then, since a browser
//!   never adds that header on its own).
//! - Offline: every asset is compiled into the binary ([`assets`]).
//! - Live: `/console/api/events` is a server-sent event stream; a sampler task turns the ring of
//!   recent requests (`observe/recent.rs`) into time series ([`series`]) and ticks the streams once a second.
//! - Cost on the request path: see `observe/recent.rs`.
//! - Rollback to a previous version on disk: [`versions`]. The Playground: [`playground`].

mod api;
mod assets;
mod playground;
mod series;
mod session;
pub(crate) mod state;
mod versions;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

pub use playground::{Simulate, SimulateJob};

use crate::response::{self, ResponseBody};
use crate::services::Services;

/// Starts the sampler: reads the ring into the time series ten times a second, keeps policy
/// versions and reload attempts once a second, and ticks the event streams while anyone watches.
/// Ends when `stop` changes or its sender is gone.
pub(crate) fn spawn_sampler(shared: Arc<Services>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_second = 0;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return,
            }
            let snapshot = shared.live.snapshot.load_full();
            shared
                .console
                .series
                .lock()
                .sample(&shared.metrics.recent, &snapshot);
            let second = crate::observe::recent::unix_ms(SystemTime::now()) / 1000;
            if second == last_second {
                continue;
            }
            last_second = second;
            shared.console.note_reloads(&shared.live);
            let keeper = shared.clone();
            let _ =
                tokio::task::spawn_blocking(move || keeper.console.versions.remember(&snapshot))
                    .await;
            if shared.metrics.recent.watching() {
                shared.console.ticks.send_modify(|t| *t += 1);
            }
        }
    });
}

// === responses ===

/// Headers on every console response: no framing, no sniffing, nothing from elsewhere.
fn secure(mut r: Response<ResponseBody>, cache: bool) -> Response<ResponseBody> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if cache {
            "private, max-age=300"
        } else {
            "no-store"
        }),
    );
    r
}

fn json_ok(body: &Value) -> Response<ResponseBody> {
    secure(response::json(StatusCode::OK, body), false)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ResponseBody> {
    secure(
        response::json(
            status,
            &json!({"error": {"message": message, "type": "console_error", "code": code}}),
        ),
        false,
    )
}

fn html(status: StatusCode, body: String) -> Response<ResponseBody> {
    secure(
        response::full(status, "text/html; charset=utf-8", Bytes::from(body)),
        false,
    )
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response<ResponseBody> {
    let mut r = secure(
        response::full(StatusCode::SEE_OTHER, "text/plain", Bytes::new()),
        false,
    );
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

// === access ===

/// Who is asking.
enum Caller {
    /// A browser session: write actions need its CSRF token.
    Session(session::Valid),
    /// The admin token as a bearer token.
    Bearer,
}

fn admin_digest(shared: &Services) -> Option<[u8; 32]> {
    shared
        .live
        .snapshot
        .load()
        .config
        .admin
        .as_ref()
        .map(|a| a.token_sha256)
}

/// Whether the credentials of `req` still open the console (an event stream asks each tick, so
/// a logout, an expired session or a new admin token ends it).
pub(crate) fn still_allowed(shared: &Services, credentials: &Credentials) -> bool {
    let Some(token) = admin_digest(shared) else {
        return false;
    };
    match credentials {
        Credentials::Bearer(digest) => bool::from(digest.ct_eq(&token)),
        Credentials::Session(id) => shared.console.sessions.check(id, &token).is_some(),
    }
}

/// What a request presented, kept by a long-lived response.
pub(crate) enum Credentials {
    Bearer([u8; 32]),
    Session(String),
}

/// The credentials `req` presents.
pub(crate) fn credentials(req: &Request<Incoming>) -> Option<Credentials> {
    if let Some(presented) = crate::auth::presented_key(req.headers()) {
        return Some(Credentials::Bearer(
            Sha256::digest(presented.as_bytes()).into(),
        ));
    }
    session::cookie(req.headers()).map(|id| Credentials::Session(id.to_owned()))
}

fn caller(shared: &Services, req: &Request<Incoming>) -> Option<Caller> {
    let token = admin_digest(shared)?;
    if let Some(presented) = crate::auth::presented_key(req.headers()) {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        return bool::from(digest.ct_eq(&token)).then_some(Caller::Bearer);
    }
    let id = session::cookie(req.headers())?;
    shared
        .console
        .sessions
        .check(id, &token)
        .map(Caller::Session)
}

/// Serves `/console` and everything under it.
pub(crate) async fn handle(
    shared: Arc<Services>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some(name) = path.strip_prefix("/console/assets/") {
        return match (method, assets::get(name)) {
            (Method::GET, Some((kind, body))) => secure(
                response::full(StatusCode::OK, kind, Bytes::from_static(body)),
                true,
            ),
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such asset"),
        };
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/console" | "/console/") => {
            return match caller(&shared, &req) {
                Some(_) => html(StatusCode::OK, assets::APP.to_owned()),
                None => html(StatusCode::OK, assets::login(None)),
            };
        }
        (&Method::POST, "/console/login") => return login(&shared, req).await,
        (&Method::POST, "/console/logout") => return logout(&shared, &req),
        _ => {}
    }
    let Some(api) = path.strip_prefix("/console/api/") else {
        return error(StatusCode::NOT_FOUND, "not_found", "unknown console path");
    };
    let api = api.to_owned();
    let Some(who) = caller(&shared, &req) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "log in at /console with the admin token (or send it as a bearer token)",
        );
    };
    if method != Method::GET
        && let Caller::Session(s) = &who
        && !session::same_origin_write(req.headers(), s)
    {
        return error(
            StatusCode::FORBIDDEN,
            "csrf_token_required",
            "write actions need the session's CSRF token in `x-csrf-token`, from the console's own pages",
        );
    }
    api::route(&shared, who_csrf(&who), method, &api, req).await
}

fn who_csrf(who: &Caller) -> Option<(String, Duration)> {
    match who {
        Caller::Session(s) => Some((s.csrf.clone(), s.expires_in)),
        Caller::Bearer => None,
    }
}

/// `POST /console/login`: a form with the admin token.
async fn login(shared: &Arc<Services>, req: Request<Incoming>) -> Response<ResponseBody> {
    use http_body_util::BodyExt;
    if !session::same_origin(req.headers()) {
        return html(
            StatusCode::FORBIDDEN,
            assets::login(Some(
                "This login form was not sent from the console's own page.",
            )),
        );
    }
    let Some(token) = admin_digest(shared) else {
        return html(
            StatusCode::FORBIDDEN,
            assets::login(Some("No admin token is configured.")),
        );
    };
    let body = http_body_util::Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let presented = form_field(&body, "token").unwrap_or_default();
    let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
    if presented.is_empty() || !bool::from(digest.ct_eq(&token)) {
        // Slows guessing down; the token itself is long (16 characters or more).
        tokio::time::sleep(Duration::from_millis(400)).await;
        tracing::warn!("console login refused: wrong admin token");
        return html(
            StatusCode::UNAUTHORIZED,
            assets::login(Some("That is not the admin token.")),
        );
    }
    let id = shared.console.sessions.open(token);
    tracing::info!("console login");
    redirect("/console", Some(session::set_cookie(&id)))
}

fn logout(shared: &Arc<Services>, req: &Request<Incoming>) -> Response<ResponseBody> {
    let Some(token) = admin_digest(shared) else {
        return redirect("/console", Some(session::clear_cookie()));
    };
    if let Some(id) = session::cookie(req.headers()) {
        let Some(valid) = shared.console.sessions.check(id, &token) else {
            return redirect("/console", Some(session::clear_cookie()));
        };
        if !session::same_origin_write(req.headers(), &valid) {
            return error(
                StatusCode::FORBIDDEN,
                "csrf_token_required",
                "logout needs the CSRF token",
            );
        }
        shared.console.sessions.close(id);
    }
    redirect("/console", Some(session::clear_cookie()))
}

/// A field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    query(std::str::from_utf8(body).ok()?, name)
}

/// A parameter of a query string (or form body), percent-decoded.
pub(crate) fn query(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (_, Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_are_decoded() {
        assert_eq!(
            form_field(b"token=a%2Bb+c&x=1", "token").as_deref(),
            Some("a+b c")
        );
        assert_eq!(query("a=1&b=%zz", "b").as_deref(), Some("%zz"));
        assert_eq!(query("a=1&b=%4", "b").as_deref(), Some("%4"));
        assert_eq!(query("a", "a").as_deref(), Some(""));
        assert_eq!(query("a=1", "b"), None);
    }
}
