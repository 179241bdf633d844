//! BuildKit's progress, as the plain lines `docker build --progress=plain` prints:
//! `#5 [2/3] RUN make`, `#5 0.412 compiling…`, `#5 DONE 1.2s`, `#3 CACHED`.
//!
//! The engine streams `StatusResponse` messages in which vertices (build operations)
//! appear, start, log and complete, in pieces and repeated. [`Progress`] numbers the
//! vertices in the order they first appear and prints each event once.

use bollard_buildkit_proto::google::protobuf::Timestamp;
use bollard_buildkit_proto::moby::buildkit::v1::StatusResponse;
use std::collections::HashMap;

#[derive(Default)]
struct Vertex {
    number: usize,
    name: String,
    announced: bool,
    finished: bool,
    started: Option<f64>,
    /// Output not yet ended by a newline.
    partial: String,
}

/// Turns a build's status messages into lines.
#[derive(Default)]
pub struct Progress {
    vertices: HashMap<String, Vertex>,
    next: usize,
    statuses_done: std::collections::HashSet<(String, String)>,
}

fn seconds(t: &Option<Timestamp>) -> Option<f64> {
    t.as_ref().map(|t| t.seconds as f64 + t.nanos as f64 / 1e9)
}

impl Progress {
    fn vertex(&mut self, digest: &str) -> &mut Vertex {
        if !self.vertices.contains_key(digest) {
            self.next += 1;
            let v = Vertex {
                number: self.next,
                ..Vertex::default()
            };
            self.vertices.insert(digest.to_string(), v);
        }
        self.vertices.get_mut(digest).expect("inserted above")
    }

    fn announce(v: &mut Vertex, out: &mut Vec<String>) {
        if !v.announced && !v.name.is_empty() {
            v.announced = true;
            out.push(format!("#{} {}", v.number, v.name));
        }
    }

    /// The lines one status message adds: vertices that start, then transfers and
    /// output, then vertices that end, so a vertex's output comes before its `DONE`.
    pub fn lines(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut out = Vec::new();
        for x in &status.vertexes {
            let v = self.vertex(&x.digest);
            if !x.name.is_empty() {
                v.name = x.name.clone();
            }
            if v.finished {
                continue;
            }
            if x.started.is_some() {
                v.started = v.started.or(seconds(&x.started));
            }
            if x.cached {
                Self::announce(v, &mut out);
                out.push(format!("#{} CACHED", v.number));
                v.finished = true;
            } else if x.started.is_some() || x.completed.is_some() {
                Self::announce(v, &mut out);
            }
        }
        for s in &status.statuses {
            if s.completed.is_none() || !self.statuses_done.insert((s.vertex.clone(), s.id.clone())) {
                continue;
            }
            let v = self.vertex(&s.vertex);
            Self::announce(v, &mut out);
            let what = if s.name.is_empty() { &s.id } else { &s.name };
            match s.current {
                0 => out.push(format!("#{} {what} done", v.number)),
                n => out.push(format!("#{} {what} {} done", v.number, size(n))),
            }
        }
        for l in &status.logs {
            let at = seconds(&l.timestamp);
            let v = self.vertex(&l.vertex);
            Self::announce(v, &mut out);
            let elapsed = match (v.started, at) {
                (Some(s), Some(a)) => (a - s).max(0.0),
                _ => 0.0,
            };
            v.partial.push_str(&String::from_utf8_lossy(&l.msg));
            while let Some(end) = v.partial.find('\n') {
                let line: String = v.partial.drain(..=end).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                out.push(format!("#{} {elapsed:.3} {line}", v.number));
            }
        }
        for x in &status.vertexes {
            let v = self.vertex(&x.digest);
            if v.finished || x.completed.is_none() {
                continue;
            }
            if !v.partial.is_empty() {
                out.push(format!("#{} {}", v.number, std::mem::take(&mut v.partial)));
            }
            if x.error.is_empty() {
                let took = match (v.started, seconds(&x.completed)) {
                    (Some(s), Some(c)) => (c - s).max(0.0),
                    _ => 0.0,
                };
                out.push(format!("#{} DONE {took:.1}s", v.number));
            } else {
                out.push(format!("#{} ERROR: {}", v.number, x.error));
            }
            v.finished = true;
        }
        out
    }
}

/// `1234` → `1.23kB`, as BuildKit's progress prints sizes.
fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1000.0 {
        format!("{b}B")
    } else if b < 1e6 {
        format!("{:.2}kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.2}MB", b / 1e6)
    } else {
        format!("{:.2}GB", b / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::moby::buildkit::v1::{Vertex as V, VertexLog, VertexStatus};

    fn at(s: i64, ms: i32) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: s,
            nanos: ms * 1_000_000,
        })
    }

    #[test]
    fn vertices_are_numbered_announced_logged_and_finished_once() {
        let mut p = Progress::default();
        let run = |started, completed, cached| V {
            digest: "sha256:b".into(),
            name: "[2/3] RUN make".into(),
            started,
            completed,
            cached,
            ..V::default()
        };
        let from = V {
            digest: "sha256:a".into(),
            name: "[1/3] FROM base".into(),
            cached: true,
            ..V::default()
        };
        let first = p.lines(&StatusResponse {
            vertexes: vec![from.clone(), run(at(10, 0), None, false)],
            ..Default::default()
        });
        assert_eq!(first, ["#1 [1/3] FROM base", "#1 CACHED", "#2 [2/3] RUN make"]);
        let logs = p.lines(&StatusResponse {
            vertexes: vec![from, run(at(10, 0), None, false)],
            logs: vec![VertexLog {
                vertex: "sha256:b".into(),
                timestamp: at(10, 250),
                msg: b"one\ntw".to_vec(),
                ..VertexLog::default()
            }],
            ..Default::default()
        });
        assert_eq!(logs, ["#2 0.250 one"]);
        let done = p.lines(&StatusResponse {
            vertexes: vec![run(at(10, 0), at(11, 500), false)],
            statuses: vec![VertexStatus {
                id: "transferring context".into(),
                vertex: "sha256:c".into(),
                current: 2048,
                completed: at(11, 0),
                ..VertexStatus::default()
            }],
            ..Default::default()
        });
        assert_eq!(done, ["#3 transferring context 2.05kB done", "#2 tw", "#2 DONE 1.5s"]);
        assert!(p
            .lines(&StatusResponse {
                vertexes: vec![run(at(10, 0), at(11, 500), false)],
                ..Default::default()
            })
            .is_empty());
    }

    #[test]
    fn an_error_is_printed_with_its_vertex() {
        let mut p = Progress::default();
        let lines = p.lines(&StatusResponse {
            vertexes: vec![V {
                digest: "d".into(),
                name: "[2/2] RUN false".into(),
                started: at(1, 0),
                completed: at(1, 100),
                error: "exit code: 1".into(),
                ..V::default()
            }],
            ..Default::default()
        });
        assert_eq!(lines, ["#1 [2/2] RUN false", "#1 ERROR: exit code: 1"]);
    }
}
