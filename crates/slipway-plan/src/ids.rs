//! A run's id: made by whoever starts the run (the daemon's API, a trigger, `exec`).

/// A short run id, unique enough for one machine's history: `sw` and 8 base-36 characters.
pub fn new_run_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("sw");
    let mut v = n;
    for _ in 0..8 {
        s.push(alphabet[(v % 36) as usize] as char);
        v /= 36;
    }
    s
}
