//! Who may see the dashboard: the API's tokens, traded once at a sign-in form for a
//! session cookie (HttpOnly, SameSite=Strict), and CSRF tokens on every form that
//! changes anything.
//!
//! Sessions are not stored: a cookie is `v1.<expiry>.<nonce>.<mac>`, the MAC keyed by
//! the token that signed in, so any node of a fleet accepts it and removing a token
//! from the settings ends its sessions. A daemon without tokens (loopback only) sets
//! no cookie; its forms carry a token made from a random per-process key, and it
//! answers only requests addressed to a loopback name (a page on another site that
//! rebinds its name to 127.0.0.1 gets nothing).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{KeyInit, Mac};
use slipway_api::secrets::same;
use slipway_api::tenant::{Caller, Directory, DEFAULT_TENANT};
use std::sync::Arc;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub(crate) const COOKIE: &str = "slipway_session";
/// How long a sign-in lasts.
const SESSION_SECONDS: i64 = 12 * 3600;

/// The keys sessions are signed with: each token's hash, keyed again with a secret
/// of the daemon (or fleet), so neither the database's hashes nor a copy of it can
/// make a session.
pub(crate) struct Keys {
    secret: Vec<u8>,
    /// Makes the CSRF token of a daemon without tokens.
    local: Vec<u8>,
    /// `scheme://host[:port]` of the daemon's public URL, when the operator set one.
    pub(crate) public_origin: Option<String>,
}

impl Keys {
    pub(crate) fn new(secret: Vec<u8>, public_url: &str) -> Keys {
        let local = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into_bytes();
        let public_origin = public_url
            .split_once("://")
            .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or("")));
        Keys {
            secret,
            local,
            public_origin: public_origin.filter(|o| !o.ends_with("://")),
        }
    }

    /// The one session of a daemon without tokens: nobody signs in, so there is no
    /// cookie, and its forms carry a token only this process can make. Its visitor is
    /// the daemon's operator.
    pub(crate) fn open_session(&self) -> Session {
        Session {
            csrf: mac(&self.local, "csrf|open"),
            caller: Caller::operator(DEFAULT_TENANT),
        }
    }

    /// The key sessions of the token with this hash are signed with.
    fn session_key(&self, token_hash: &str) -> Vec<u8> {
        mac(&self.secret, &format!("session-key|{token_hash}")).into_bytes()
    }

    /// A new session cookie's value, for the token with this hash.
    pub(crate) fn issue(&self, token_hash: &str, now_s: i64) -> String {
        let key = self.session_key(token_hash);
        let expiry = now_s + SESSION_SECONDS;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        format!("v1.{expiry}.{nonce}.{}", mac(&key, &format!("session|{expiry}|{nonce}")))
    }

    /// The session a cookie's value proves, if one of `directory`'s tokens signed it
    /// and it has not expired: removing the token ends its sessions.
    pub(crate) fn verify(&self, value: &str, now_s: i64, directory: &Directory) -> Option<Session> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(expiry), Some(nonce), Some(given), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if expiry.parse::<i64>().ok()? < now_s {
            return None;
        }
        let message = format!("session|{expiry}|{nonce}");
        let (hash, key) = directory
            .all_hashes()
            .map(|h| (h, self.session_key(h)))
            .find(|(_, k)| same(mac(k, &message).as_bytes(), given.as_bytes()))?;
        Some(Session {
            csrf: mac(&key, &format!("csrf|{nonce}")),
            caller: directory.caller_of_hash(hash)?,
        })
    }
}

/// A signed-in visitor (or, without tokens, any visitor), and who it speaks for.
#[derive(Clone)]
pub(crate) struct Session {
    /// The token this session's forms carry.
    pub csrf: String,
    pub caller: Caller,
}

impl Session {
    pub(crate) fn csrf_ok(&self, given: &str) -> bool {
        !given.is_empty() && same(self.csrf.as_bytes(), given.as_bytes())
    }
}

fn mac(key: &[u8], message: &str) -> String {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(message.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` for a session (or, with `None`, one that ends it).
pub(crate) fn set_cookie(value: Option<&str>, headers: &HeaderMap) -> HeaderValue {
    // Behind a proxy that terminates TLS, the cookie is kept off plain HTTP too.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if secure { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!("{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

/// Whether the request names this machine's loopback (`localhost`, `127.x`, `[::1]`).
pub fn addressed_to_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    slipway_reference::host::is_loopback(slipway_reference::host::without_port(host))
}

/// A state-changing request must come from the dashboard's own pages: browsers say
/// where a request comes from (`Sec-Fetch-Site`; older ones only `Origin`, compared
/// with the host asked for or the daemon's public URL), and another site's page is
/// refused even before its missing CSRF token would be.
pub fn same_origin(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_host = host.is_some_and(|h| origin.split_once("://").is_some_and(|(_, o)| o.eq_ignore_ascii_case(h)));
    same_host || public_origin.is_some_and(|p| p.eq_ignore_ascii_case(origin))
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Applies to every dashboard route: finds the visitor's session, sends the unsigned
/// to the sign-in form, refuses cross-site writes.
pub(crate) async fn guard(State(d): State<Arc<crate::Dashboard>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let directory = d.node.directory();
    if directory.is_open() && !addressed_to_loopback(&headers) {
        return crate::layout::error_page(
            StatusCode::MISDIRECTED_REQUEST,
            "Not this address",
            "A daemon without tokens answers only requests to localhost, 127.0.0.1 or [::1].",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD && !same_origin(&headers, d.keys.public_origin.as_deref()) {
        return crate::layout::error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This request came from another site's page; the dashboard only takes forms from its own pages.",
        );
    }
    if directory.is_open() {
        req.extensions_mut().insert(d.keys.open_session());
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    let session = cookie_value(&headers).and_then(|v| d.keys.verify(v, now_s(), &directory));
    if let Some(s) = session {
        req.extensions_mut().insert(s);
        return next.run(req).await;
    }
    if path == "/signin" || path.starts_with("/assets/") {
        return next.run(req).await;
    }
    if req.method() == Method::GET && !path.starts_with("/live/") {
        let next_path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next_path)
            .finish();
        return Redirect::to(&format!("/signin?{query}")).into_response();
    }
    crate::layout::error_page(StatusCode::UNAUTHORIZED, "Sign in", "Your session has ended; sign in again.")
}

/// Where to go after signing in: a path on this site only.
pub(crate) fn safe_next(next: &str) -> &str {
    // Browsers drop tabs and line breaks from URLs (`/\t/evil` is `//evil`): only
    // printable ASCII is taken.
    let printable = next.chars().all(|c| c.is_ascii_graphic());
    if printable && next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use slipway_api::tenant::{token_hash, Role, Tenant};

    fn directory(tokens: &[(&str, &str)]) -> Directory {
        Directory {
            tenants: tokens
                .iter()
                .map(|(tenant, token)| Tenant {
                    name: tenant.to_string(),
                    token_hashes: vec![token_hash(token)],
                    admin_token_hashes: vec![],
                    repositories: vec![],
                })
                .collect(),
            operator_token_hashes: vec![],
        }
    }

    #[test]
    fn sessions_are_signed_by_a_token_and_expire() {
        let dir = directory(&[("team-a", "alpha"), ("team-b", "beta")]);
        let keys = Keys::new(b"daemon secret".to_vec(), "");
        let c = keys.issue(&token_hash("beta"), 1000);
        let s = keys.verify(&c, 1001, &dir).expect("valid");
        assert_eq!((s.caller.tenant.as_str(), s.caller.role), ("team-b", Role::Member));
        assert!(s.csrf_ok(&s.csrf));
        assert!(!s.csrf_ok(""));
        assert!(keys.verify(&c, 1000 + SESSION_SECONDS + 1, &dir).is_none(), "expired");
        // A token removed from the settings ends its sessions.
        assert!(keys.verify(&c, 1001, &directory(&[("team-a", "alpha")])).is_none());
        // Another daemon's secret (or a copy of the database's hashes alone) makes none.
        assert!(Keys::new(b"other".to_vec(), "").verify(&c, 1001, &dir).is_none());
        // Tampering with any part fails.
        let mut parts: Vec<String> = c.split('.').map(str::to_string).collect();
        parts[1] = (parts[1].parse::<i64>().unwrap() + 100).to_string();
        assert!(keys.verify(&parts.join("."), 1001, &dir).is_none());
        assert!(keys.verify("v1.x", 1001, &dir).is_none());
        assert!(keys.verify("", 1001, &dir).is_none());
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let dir = directory(&[("team-a", "alpha")]);
        let keys = Keys::new(b"k".to_vec(), "");
        let a = keys.verify(&keys.issue(&token_hash("alpha"), 5), 6, &dir).unwrap();
        let b = keys.verify(&keys.issue(&token_hash("alpha"), 5), 6, &dir).unwrap();
        assert!(!a.csrf_ok(&b.csrf));
    }

    #[test]
    fn loopback_names_and_origins() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        assert!(addressed_to_loopback(&h(&[("host", "127.0.0.1:8080")])));
        assert!(addressed_to_loopback(&h(&[("host", "localhost:1")])));
        assert!(addressed_to_loopback(&h(&[("host", "[::1]:9")])));
        assert!(!addressed_to_loopback(&h(&[("host", "evil.example:8080")])));
        assert!(!addressed_to_loopback(&h(&[])));
        assert!(same_origin(&h(&[("host", "a:1"), ("origin", "http://a:1")]), None));
        assert!(!same_origin(&h(&[("host", "a:1"), ("origin", "http://b:1")]), None));
        assert!(same_origin(
            &h(&[("host", "127.0.0.1:1"), ("origin", "https://ci.example")]),
            Some("https://ci.example")
        ));
        assert!(!same_origin(&h(&[("host", "a:1"), ("sec-fetch-site", "cross-site")]), None));
        // Behind a proxy that rewrites Host, the browser's own word decides.
        assert!(same_origin(
            &h(&[
                ("host", "127.0.0.1:1"),
                ("origin", "https://ci.example"),
                ("sec-fetch-site", "same-origin")
            ]),
            None
        ));
        assert!(same_origin(&h(&[("host", "a:1")]), None));
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/runs/x?y=1"), "/runs/x?y=1");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
    }
}
