//! Console sessions: the admin token is exchanged once, at the login form, for a random session
//! id in a cookie (`HttpOnly`, `SameSite=Strict`, expiring), and each session has its own CSRF
//! token that every write action must send back in a header.
//!
//! Only SHA-256 digests of session ids are kept. A session also remembers the digest of the admin
//! token it was opened with: a config reload that changes the token ends every session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::HeaderMap;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "switchyard_console";
/// The header write actions carry the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from login (no sliding renewal).
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 64;

struct Session {
    csrf: String,
    expires: Instant,
    /// The admin token's digest when the session was opened.
    token: [u8; 32],
}

/// The open sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

/// A valid session, as a request presents it.
#[derive(Debug, Clone)]
pub(crate) struct Valid {
    pub csrf: String,
    pub expires_in: Duration,
}

/// Random bytes from the kernel, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        // Never reached on Linux; still never a predictable token.
        panic!("cannot read /dev/urandom for a console session token");
    }
    hex::encode(buf)
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for a login with the admin token whose digest is `token`; returns the
    /// session id (the cookie's value).
    pub fn open(&self, token: [u8; 32]) -> String {
        let id = random_hex(32);
        let now = Instant::now();
        let mut open = self.open.lock();
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            open.remove(&oldest);
        }
        open.insert(
            digest(&id),
            Session {
                csrf: random_hex(32),
                expires: now + LIFETIME,
                token,
            },
        );
        id
    }

    /// The session `id` opens, while it lasts and the admin token is still `token`.
    pub fn check(&self, id: &str, token: &[u8; 32]) -> Option<Valid> {
        let key = digest(id);
        let mut open = self.open.lock();
        let now = Instant::now();
        let session = open.get(&key)?;
        if session.expires <= now || !bool::from(session.token.ct_eq(token)) {
            open.remove(&key);
            return None;
        }
        Some(Valid {
            csrf: session.csrf.clone(),
            expires_in: session.expires - now,
        })
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) {
        self.open.lock().remove(&digest(id));
    }
}

/// The session id in the request's cookies, if any.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value of a new session.
pub(crate) fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a write action sent with a session cookie is the console's own: the session's CSRF
/// token in [`CSRF_HEADER`], and, when the browser says where the request comes from, this
/// origin.
pub(crate) fn same_origin_write(headers: &HeaderMap, session: &Valid) -> bool {
    let token_ok = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(session.csrf.as_bytes())));
    token_ok && same_origin(headers)
}

/// False when the browser says the request comes from another site (`Sec-Fetch-Site`), or
/// from an origin other than the one it is addressed to (`Origin` against `Host`).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_while_the_admin_token_stays() {
        let sessions = Sessions::default();
        let token = digest("admin");
        let id = sessions.open(token);
        assert_eq!(id.len(), 64);
        let valid = sessions.check(&id, &token).expect("open");
        assert_eq!(valid.csrf.len(), 64);
        assert!(sessions.check("nope", &token).is_none());
        assert!(
            sessions.check(&id, &digest("other")).is_none(),
            "a new admin token ends it"
        );
        assert!(sessions.check(&id, &token).is_none(), "and it stays ended");
        let id = sessions.open(token);
        sessions.close(&id);
        assert!(sessions.check(&id, &token).is_none());
    }

    #[test]
    fn cookies_and_origins_are_read_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; switchyard_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("abc"));
        h.insert("host", "127.0.0.1:9090".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://127.0.0.1:9090".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.remove("origin");
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        let valid = Valid {
            csrf: "t0k".into(),
            expires_in: LIFETIME,
        };
        assert!(!same_origin_write(&h, &valid), "no token");
        h.insert(CSRF_HEADER, "t0k".parse().unwrap());
        assert!(same_origin_write(&h, &valid));
        assert!(set_cookie("x").contains("HttpOnly; SameSite=Strict; Max-Age=28800"));
    }
}
