//! What the targets share: how one fuzz input is cut into the parts a call needs.
#![allow(dead_code)]

/// Splits `data` at its first NUL byte: the main text, and the optional rest (values,
/// options or paths, by target). Seeds taken from real files have no NUL, so they are
/// fed whole as the main text. Invalid UTF-8 is replaced, since every entry point
/// takes `&str`.
pub fn split(data: &[u8]) -> (String, Option<String>) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (lossy(&data[..i]), Some(lossy(&data[i + 1..]))),
        None => (lossy(data), None),
    }
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The template limits the targets run with: the defaults, but a deadline well under
/// libFuzzer's `-timeout=10`, so a template the deadline stops is an `Err` and only a
/// single step that runs away past it shows as a hang. (The default deadline, 10 s,
/// would equal the timeout.)
pub fn template_limits() -> slipway_template::Limits {
    slipway_template::Limits {
        max_duration: std::time::Duration::from_secs(2),
        ..slipway_template::Limits::default()
    }
}
