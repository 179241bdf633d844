//! Whatever text arrives, loading a task file returns a value or an error, never a panic.

use slipway_taskfile::{load, Options, RunVars};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "steps:\n",
    "  - ",
    "cmd: ",
    "build: ",
    "push: [",
    "]",
    "id: ",
    "when: [\"-\"]",
    "\n",
    "    ",
    "{{",
    "}}",
    "{{-",
    "-}}",
    ".Run.ID",
    ".Values.x",
    "| upper",
    "| default \"d\"",
    "if ",
    "range ",
    "end",
    "else",
    "$",
    "$$",
    "$ID",
    "\"",
    "'",
    "`",
    "(",
    ")",
    "version: v1.1.0\n",
    "alias:\n",
    "  values:\n",
    "    a: b\n",
    "  directive: \"&\"\n",
    "&ID",
    "é",
    "日本",
    "\t",
    ":",
    "#",
    "# comment\n",
    "busybox",
    "-t x:1 .",
    "timeout: -1",
    "env: [\"A=1,B=2\"]",
    "secrets:\n  - id: s\n",
    "volumes:\n  - name: v\n    secret:\n      f: \"!!\"\n",
    "networks: []\n",
    "{{/*",
    "*/}}",
    "printf",
    "index",
    "len",
    "b64dec",
    "nosuch",
    ",",
    "=",
    ":=",
    "0x",
    "-",
    "1.5e9",
];

#[test]
fn random_task_files_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = Options::new(RunVars::new("r1", "reg.io", chrono::Utc::now()));
    for _ in 0..5000 {
        let n = 1 + rng.next() % 30;
        let text: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        let _ = load("fuzz.yaml", &text, &opts, &|_| Err("no files".into()));
        let _ = slipway_template::render(&text, &serde_json::json!({"Values": {"x": [1, 2]}}));
    }
}
