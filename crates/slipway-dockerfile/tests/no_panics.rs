//! Whatever a Dockerfile holds, the scan returns a value or an error, never a panic.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "ARG ",
    "COPY ",
    "RUN ",
    "--from=",
    "--platform=",
    "--mount=from=",
    "AS ",
    "as ",
    "alpine",
    "${A:-b}",
    "${A:+c}",
    "$A",
    "${",
    "}",
    "=",
    "scratch",
    "0",
    "1",
    "99",
    "\\\n",
    "\n",
    " ",
    "#",
    "# escape=`\n",
    "`",
    "é",
    "日本",
    ":",
    "@sha256:",
    "/",
    "A=1",
    "\"",
    "'",
    "\u{feff}",
];

#[test]
fn random_dockerfiles_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..5000 {
        let n = 1 + rng.next() % 25;
        let text: String = (0..n).map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize]).collect();
        let target = if rng.next() % 3 == 0 { Some("x".to_string()) } else { None };
        let _ = slipway_dockerfile::scan(
            &text,
            &slipway_dockerfile::ScanOptions {
                target,
                ..Default::default()
            },
        );
    }
}
