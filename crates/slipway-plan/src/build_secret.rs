//! `--secret id=ID[,env=NAME|,src=PATH]` as `docker build` reads it: the one reading the
//! client (which reads the value on the person's machine) and the runner (which reads
//! it from the step's environment or the run's source) share.

/// Where a build secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A variable (with neither `env=` nor `src=`, the one named as the id).
    Env(String),
    /// A file.
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub id: String,
    pub source: SecretSource,
}

impl SecretSpec {
    /// Reads the flag's value; the error names the spec and what is wrong with it.
    pub fn parse(text: &str) -> Result<SecretSpec, String> {
        let (mut id, mut env, mut src) = (None, None, None);
        for kv in text.split(',') {
            match kv.split_once('=') {
                Some(("id", v)) => id = Some(v),
                Some(("env", v)) => env = Some(v),
                Some(("src" | "source", v)) => src = Some(v),
                Some(("type", "env" | "file")) => {}
                _ => return Err(format!("--secret {text:?}: expected id=ID with env=NAME or src=PATH, not {kv:?}")),
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| format!("--secret {text:?} names no id"))?;
        let source = match (env, src) {
            (Some(_), Some(_)) => return Err(format!("--secret id={id}: give env= or src=, not both")),
            (None, Some(path)) => SecretSource::File(path.to_string()),
            (name, None) => SecretSource::Env(name.unwrap_or(id).to_string()),
        };
        Ok(SecretSpec {
            id: id.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_as_docker_build_reads_them() {
        let env = |id: &str, v: &str| SecretSpec {
            id: id.into(),
            source: SecretSource::Env(v.into()),
        };
        assert_eq!(SecretSpec::parse("id=npm").unwrap(), env("npm", "npm"));
        assert_eq!(SecretSpec::parse("id=npm,env=NPM_TOKEN").unwrap(), env("npm", "NPM_TOKEN"));
        assert_eq!(SecretSpec::parse("type=env,id=npm,env=T").unwrap(), env("npm", "T"));
        assert_eq!(
            SecretSpec::parse("id=k,src=key.pem").unwrap(),
            SecretSpec {
                id: "k".into(),
                source: SecretSource::File("key.pem".into())
            }
        );
        for (bad, words) in [
            ("env=X", "names no id"),
            ("id=a,env=X,src=y", "not both"),
            ("id=a,mode=0400", "expected id=ID"),
        ] {
            assert!(SecretSpec::parse(bad).unwrap_err().contains(words), "{bad}");
        }
    }
}
