//! The API's one error shape: a status, a code and a message that names what was
//! wrong (`{"error": {"code", "message"}}`); internal details only in the daemon's log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slipway_api::model::{ApiError, ErrorBody};

/// An API error: a status and a message that names what was wrong.
pub struct Failure(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        // Messages can quote what a client sent (a field name, an id): a terminal that
        // prints one must not run its control characters.
        let message: String = self
            .2
            .chars()
            .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
                if c.is_control() && c != '\n' {
                    Box::new(c.escape_debug())
                } else {
                    Box::new(std::iter::once(c))
                }
            })
            .collect();
        // A message quoting a huge input is cut short.
        let message = if message.chars().count() > 2000 {
            format!("{}… (cut)", message.chars().take(2000).collect::<String>())
        } else {
            message
        };
        let body = ApiError {
            error: ErrorBody {
                code: self.1.to_string(),
                message,
            },
        };
        (self.0, Json(body)).into_response()
    }
}

pub(crate) fn bad_request(m: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, "BadRequest", m.into())
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %e, "request failed");
    Failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "the daemon could not complete the request; see its log".into(),
    )
}

pub(crate) fn conflict(m: impl Into<String>) -> Failure {
    Failure(StatusCode::CONFLICT, "Conflict", m.into())
}
