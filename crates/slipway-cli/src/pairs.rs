//! The one parser of `NAME=VALUE` arguments (`--set`, `--build-arg`, `--image-alias`,
//! `--credential`, `--registry-credential`, `--schedule`, …), with one error shape:
//! `--flag "NAME": expected NAME=VALUE`. An error shows at most the part before the
//! separator, never a value; for a secret flag (its name says `secret` or `credential`,
//! or it is `--blob-store-option` or `--header`)
//! text without a separator is shown as `*****`, since it may be the secret itself.
//!
//! The flags are parsed after clap, not as clap value parsers, because clap's own errors
//! repeat the whole argument.

use anyhow::{anyhow, Result};

/// Splits `text`, one argument of `flag`, as `shape` says: at the first `=` or `:` of the
/// shape (`NAME=VALUE`, `ALIAS=IMAGE`, `NAME:CRON`), and when the shape's value part holds
/// a `:` (`REGISTRY=USER:PASSWORD`, `HOST=USER:TOKEN`) the value must hold one too.
pub fn split(flag: &str, text: &str, shape: &str) -> Result<(String, String)> {
    let (sep, value_shape) = shape_parts(shape);
    match text.split_once(sep) {
        Some((name, value)) if !name.is_empty() && (!value_shape.contains(':') || value.contains(':')) => {
            Ok((name.to_string(), value.to_string()))
        }
        Some((name, _)) => Err(expected(flag, name, shape)),
        None => Err(expected(flag, &shown(flag, text), shape)),
    }
}

/// Like [`split`] for `NAME=VALUE`, but `NAME` alone takes the value of the environment
/// variable `NAME` (build arguments and values given to the daemon by the client).
pub fn split_or_env(flag: &str, text: &str) -> Result<(String, String)> {
    if text.contains('=') {
        return split(flag, text, "NAME=VALUE");
    }
    match std::env::var(text) {
        Ok(value) if !text.is_empty() => Ok((text.to_string(), value)),
        _ => Err(anyhow!(
            "{flag} {:?}: expected NAME=VALUE, or the NAME of a set environment variable",
            shown(flag, text)
        )),
    }
}

/// Each of `list` through [`split`].
pub fn split_all(flag: &str, list: &[String], shape: &str) -> Result<Vec<(String, String)>> {
    list.iter().map(|text| split(flag, text, shape)).collect()
}

/// `REGISTRY=USER:PASSWORD` (or `HOST=USER:TOKEN`) as the name and its credential.
pub fn credential(flag: &str, text: &str, shape: &str) -> Result<(String, slipway_api::secrets::Credential)> {
    let (name, value) = split(flag, text, shape)?;
    Ok((name, slipway_api::secrets::Credential::parse(&value)))
}

/// The separator of a shape and the part after it.
fn shape_parts(shape: &str) -> (char, &str) {
    match shape.char_indices().find(|(_, c)| matches!(c, '=' | ':')) {
        Some((i, c)) => (c, &shape[i + 1..]),
        None => ('=', ""),
    }
}

fn is_secret(flag: &str) -> bool {
    // A blob store's options carry account keys and tokens; a webhook's headers carry
    // its receiver's credentials.
    flag.contains("secret") || flag.contains("credential") || flag == "--blob-store-option" || flag == "--header"
}

/// What an error may show of an argument with no separator.
fn shown(flag: &str, text: &str) -> String {
    if is_secret(flag) {
        "*****".into()
    } else {
        text.into()
    }
}

fn expected(flag: &str, name: &str, shape: &str) -> anyhow::Error {
    anyhow!("{flag} {name:?}: expected {shape}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_shapes_separator() {
        let s = |flag, text, shape| split(flag, text, shape).map_err(|e| e.to_string());
        assert_eq!(s("--set", "a=b=c", "NAME=VALUE").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(s("--set", "a=", "NAME=VALUE").unwrap(), ("a".into(), "".into()));
        assert_eq!(s("--schedule", "nightly:0 2 * * *", "NAME:CRON").unwrap().1, "0 2 * * *");
        assert_eq!(
            s("--git-credential", "127.0.0.1:3000=builder:t:o", "HOST=USER:TOKEN").unwrap(),
            ("127.0.0.1:3000".into(), "builder:t:o".into())
        );
        assert_eq!(s("--set", "who", "NAME=VALUE").unwrap_err(), r#"--set "who": expected NAME=VALUE"#);
        assert_eq!(s("--set", "=x", "NAME=VALUE").unwrap_err(), r#"--set "": expected NAME=VALUE"#);
        assert_eq!(
            s("--schedule", "0 2 * * *", "NAME:CRON").unwrap_err(),
            r#"--schedule "0 2 * * *": expected NAME:CRON"#
        );
        assert_eq!(
            credential("--credential", "reg.io=me:pw=1", "REGISTRY=USER:PASSWORD").unwrap(),
            ("reg.io".into(), slipway_api::secrets::Credential::parse("me:pw=1"))
        );
    }

    #[test]
    fn errors_never_show_a_secret() {
        for (flag, text, shape, message) in [
            (
                "--set-secret",
                "hunter2",
                "NAME=VALUE",
                r#"--set-secret "*****": expected NAME=VALUE"#,
            ),
            (
                "--secret-arg",
                "hunter2",
                "NAME=VALUE",
                r#"--secret-arg "*****": expected NAME=VALUE"#,
            ),
            (
                "--credential",
                "reg.io=hunter2",
                "REGISTRY=USER:PASSWORD",
                r#"--credential "reg.io": expected REGISTRY=USER:PASSWORD"#,
            ),
            (
                "--registry-credential",
                "me:hunter2",
                "REGISTRY=USER:PASSWORD",
                r#"--registry-credential "*****": expected REGISTRY=USER:PASSWORD"#,
            ),
            (
                "--git-credential",
                "=me:hunter2",
                "HOST=USER:TOKEN",
                r#"--git-credential "": expected HOST=USER:TOKEN"#,
            ),
        ] {
            assert_eq!(split(flag, text, shape).unwrap_err().to_string(), message);
        }
        let e = split_or_env("--secret-build-arg", "hunter2-NOT-SET").unwrap_err().to_string();
        assert!(
            !e.contains("hunter2") && e.starts_with(r#"--secret-build-arg "*****": expected NAME=VALUE"#),
            "{e}"
        );
        let e = split_or_env("--build-arg", "SLIPWAY_TEST_NOT_SET").unwrap_err().to_string();
        assert!(e.starts_with(r#"--build-arg "SLIPWAY_TEST_NOT_SET": expected NAME=VALUE"#), "{e}");
        assert_eq!(split_or_env("--build-arg", "PATH").unwrap().1, std::env::var("PATH").unwrap());
    }
}
