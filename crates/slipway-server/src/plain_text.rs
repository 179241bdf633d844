//! Ids, names and query values are plain text: a control character in a request's path
//! or query, or a NUL in a JSON body's strings, is refused with 400 before anything
//! reaches the store (PostgreSQL's text cannot hold a NUL at all; SQLite's can, so the
//! two databases answered differently).

use crate::failure::{bad_request, Failure};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Refuses a request whose path or query holds a control character.
pub(crate) async fn control_characters(req: Request, next: Next) -> Response {
    if let Some((place, c)) = first_control(req.uri()) {
        return bad_request(format!(
            "the request's {place} holds a control character ({}): ids, names and query values are plain text",
            c.escape_unicode()
        ))
        .into_response();
    }
    next.run(req).await
}

fn first_control(uri: &axum::http::Uri) -> Option<(&'static str, char)> {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Some(("path", c));
    }
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if let Some(c) = k.chars().chain(v.chars()).find(|c| c.is_control()) {
            return Some(("query", c));
        }
    }
    None
}

/// Refuses a JSON body with a NUL in any string or key (`\u0000`); a body that is not
/// JSON is left to its handler to refuse with its own words.
pub(crate) fn no_nul(body: &[u8]) -> Result<(), Failure> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if has_nul(&v) => Err(bad_request(
            "the body holds a NUL character (\\u0000) in a string: values are plain text",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_found_where_they_hide() {
        let find = |u: &str| super::first_control(&u.parse().unwrap()).map(|(p, _)| p);
        assert_eq!(find("/v1/runs/ab%00cd"), Some("path"));
        assert_eq!(find("/v1/runs?task=a%0Ab"), Some("query"));
        assert_eq!(find("/v1/runs?task=a&status=Running"), None);
        assert_eq!(find("/v1/tasks/caf%C3%A9"), None);
        assert!(super::no_nul(br#"{"platform": "linux\u0000/amd64"}"#).is_err());
        assert!(super::no_nul(br#"{"values": [{"name": "a", "value": "line\nbreak"}]}"#).is_ok());
    }
}
