//! The operator's choices of how a run's steps use the engine: how they reach it
//! ([`EngineAccess`]) and which builder runs their builds ([`Builder`]). Each reads
//! and writes as one lower-case word, the same in a config file, a variable and a flag.

/// Defines a choice: its words in order (the one marked `#[default]` is the default), and
/// text conversions (also serde's) that refuse any other word with a message naming
/// `$what` and the words. The operator's choices here and the API's enums
/// (`slipway_api::task`) are made with it.
#[macro_export]
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident, $what:literal, [$($(#[$vdoc:meta])* $variant:ident = $word:literal),+]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every word, in the order help lists them.
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!(concat!($what, " {:?} is not one of {}"), other, $name::NAMES.join(", "))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

choice!(
    /// How steps reach the container engine.
    EngineAccess, "engine access", [
    /// A per-run engine API proxy at the socket's path: `docker …` works, but only on the
    /// run's own containers, networks and volumes, and never with host mounts,
    /// privileges or the host's network.
    #[default]
    Proxy = "proxy",
    /// The engine's own socket: root on the host, as `docker run -v /:/host` shows.
    Full = "full",
    /// No engine socket in steps.
    None = "none"
]);

choice!(
    /// Which of the engine's builders runs a build.
    Builder, "builder", [
    /// BuildKit when the engine offers it (API 1.39 and later on Linux), else classic.
    #[default]
    BuildKit = "buildkit",
    /// The classic builder, which the engine calls deprecated: no `RUN --mount`, no
    /// secrets, no cache import.
    Classic = "classic"
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_reads_its_words_and_names_them_when_refusing() {
        for name in EngineAccess::NAMES {
            assert_eq!(name.parse::<EngineAccess>().unwrap().as_str(), *name);
        }
        assert_eq!("classic".parse::<Builder>(), Ok(Builder::Classic));
        assert_eq!(
            "root".parse::<EngineAccess>(),
            Err("engine access \"root\" is not one of proxy, full, none".to_string())
        );
        let b: Builder = serde_json::from_str("\"buildkit\"").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"buildkit\"");
    }
}
