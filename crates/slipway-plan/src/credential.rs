//! A user and a secret: a registry's password, a git host's token.

use serde::{Deserialize, Serialize};

/// A user and a secret. It reads and writes as `user:secret`, the form every flag,
/// variable, request body and vault file gives it in (text without a `:` is a user with
/// an empty secret); [`std::fmt::Debug`] never shows the secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Credential {
    pub user: String,
    pub secret: String,
}

impl Credential {
    /// `user:secret`, split at its first `:`.
    pub fn parse(text: &str) -> Credential {
        let (user, secret) = text.split_once(':').unwrap_or((text, ""));
        Credential {
            user: user.to_string(),
            secret: secret.to_string(),
        }
    }

    /// `user:secret`, as it was given.
    pub fn text(&self) -> String {
        format!("{}:{}", self.user, self.secret)
    }
}

impl From<String> for Credential {
    fn from(text: String) -> Credential {
        Credential::parse(&text)
    }
}

impl From<&str> for Credential {
    fn from(text: &str) -> Credential {
        Credential::parse(text)
    }
}

impl From<Credential> for String {
    fn from(c: Credential) -> String {
        c.text()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("secret", &"*****")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Credential;

    #[test]
    fn it_splits_at_the_first_colon_reads_back_as_given_and_never_shows_its_secret() {
        let c = Credential::parse("robot:p:w=1");
        assert_eq!((c.user.as_str(), c.secret.as_str()), ("robot", "p:w=1"));
        assert_eq!(c.text(), "robot:p:w=1");
        assert_eq!(Credential::parse("token").secret, "");
        assert!(!format!("{c:?}").contains("p:w"), "{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"robot:p:w=1\"");
        assert_eq!(serde_json::from_str::<Credential>(&json).unwrap(), c);
    }
}
