//! What a proxy remembers across requests: the exec instances and the networks and
//! volumes its run created through it, under the names the client gave them.

use super::After;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct State {
    /// Exec ids the engine returned for execs created through the proxy.
    pub execs: HashSet<String>,
    /// Client name → engine name.
    pub networks: HashMap<String, String>,
    /// Client name → engine name (a volume created without a name maps to itself).
    pub volumes: HashMap<String, String>,
    /// Images the run pulled through the proxy: the name it pulled (normalised) →
    /// the engine's `repository@digest`.
    pub pulled: HashMap<String, String>,
}

impl State {
    /// The engine name of a network created through the proxy, by either name.
    pub fn network(&self, name: &str) -> Option<&str> {
        lookup(&self.networks, name)
    }

    /// The engine name of a volume created through the proxy, by either name.
    pub fn volume(&self, name: &str) -> Option<&str> {
        lookup(&self.volumes, name)
    }

    /// Records what a successful response tells (`response` is its JSON, when it had one).
    pub fn remember(&mut self, after: &After, response: Option<&Value>) {
        let field = |name: &str| response.and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_string);
        match after {
            After::Nothing => {}
            After::Exec => {
                if let Some(id) = field("Id") {
                    self.execs.insert(id);
                }
            }
            After::Network { client, engine } => {
                self.networks.insert(client.clone(), engine.clone());
            }
            After::Volume { client } => {
                if let Some(engine) = field("Name") {
                    let client = if client.is_empty() { engine.clone() } else { client.clone() };
                    self.volumes.insert(client, engine);
                }
            }
            After::ForgetNetwork(engine) => self.networks.retain(|_, e| e != engine),
            After::ForgetVolume(engine) => self.volumes.retain(|_, e| e != engine),
        }
    }
}

fn lookup<'m>(map: &'m HashMap<String, String>, name: &str) -> Option<&'m str> {
    map.get(name).or_else(|| map.values().find(|e| *e == name)).map(String::as_str)
}
