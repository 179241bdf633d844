//! One attempt to deliver: a POST with the webhook's headers and signature, within the
//! attempt's timeout, to an address the operator allows, following no redirect.

use crate::payload::{signature, SIGNATURE_HEADER, USER_AGENT};
use futures_util::StreamExt;
use slipway_api::webhook::WebhookSecrets;
use std::time::{Duration, Instant};

/// Most bytes of an answer kept with the attempt.
const EXCERPT_BYTES: usize = 512;

/// How an attempt went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    pub response: Option<String>,
}

impl Sent {
    pub fn delivered(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// A client for deliveries: no redirects (a receiver that moved must be updated), and
/// every address a name resolves to checked against `reach`.
/// No proxy either: through one, only the proxy's name would be resolved and checked.
pub fn client(reach: &std::sync::Arc<slipway_sources::Reach>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(reach.resolver())
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot make the webhooks' HTTP client: {e}"))
}

/// POSTs `body` to `uri`.
pub async fn post(
    client: &reqwest::Client,
    uri: &str,
    action: &str,
    delivery: &str,
    body: &str,
    secrets: &WebhookSecrets,
    timeout: Duration,
) -> Sent {
    let mut req = client
        .post(uri)
        .timeout(timeout)
        .header("X-Slipway-Event", action)
        .header("X-Slipway-Delivery", delivery);
    if !secrets.custom_headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
        req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in &secrets.custom_headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(secret) = &secrets.secret {
        req = req.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
    }
    let started = Instant::now();
    let answer = req.body(body.to_string()).send().await;
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            return Sent {
                status_code: None,
                latency: started.elapsed(),
                error: Some(describe(e, timeout)),
                response: None,
            }
        }
    };
    let status = resp.status().as_u16();
    // Only the start of the answer is read: a receiver cannot make us hold more.
    let mut excerpt = Vec::new();
    let mut stream = resp.bytes_stream();
    let rest = tokio::time::timeout(timeout.saturating_sub(started.elapsed()), async {
        while let Some(Ok(chunk)) = stream.next().await {
            excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())]);
            if excerpt.len() >= EXCERPT_BYTES {
                break;
            }
        }
    })
    .await;
    let latency = started.elapsed();
    let text: String = String::from_utf8_lossy(&excerpt)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    Sent {
        status_code: Some(status),
        latency,
        error: match (rest, (200..300).contains(&status)) {
            (_, false) => Some(format!("the receiver answered {status}")),
            _ => None,
        },
        response: Some(text).filter(|t| !t.is_empty()),
    }
}

/// A delivery error in words, without the URI (which may hold a token).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    // The innermost cause says what happened (refused, a name not allowed, TLS).
    let mut cause: Option<String> = None;
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = Some(s.to_string());
        source = s.source();
    }
    let what = if e.is_connect() { "cannot connect" } else { "the request failed" };
    match cause {
        Some(c) => format!("{what}: {c}"),
        None => format!("{what}: {}", e.without_url()),
    }
}
