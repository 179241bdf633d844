//! Which steps of a run may start: the step graph's one decision, a pure function the
//! scheduler asks each time a step ends, tested as a table with no engine.

use crate::report::StepStatus;
use std::collections::HashMap;

/// The indexes of the steps that may start now, in the plan's order: not started yet,
/// and every step each waits for (`when`, resolved by the task file's planner: empty
/// for `-`, the previous step when none is given) has ended in a way that lets its
/// dependents run (succeeded, or failed with `ignoreErrors`).
pub(crate) fn ready(when: &[&[String]], started: &[bool], done: &HashMap<String, StepStatus>) -> Vec<usize> {
    when.iter()
        .enumerate()
        .filter(|(i, deps)| {
            !started[*i]
                && deps
                    .iter()
                    .all(|d| done.get(d.as_str()).is_some_and(|status| status.lets_dependents_run()))
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn steps_start_as_their_dependencies_end() {
        // a; b and c after a; d after b and c; e in parallel from the start.
        let graph = [ids(&[]), ids(&["a"]), ids(&["a"]), ids(&["b", "c"]), ids(&[])];
        let when: Vec<&[String]> = graph.iter().map(Vec::as_slice).collect();
        // Which steps have started, which have ended and how, which may start now.
        type Row<'a> = (&'a [bool], &'a [(&'a str, StepStatus)], &'a [usize]);
        let table: &[Row] = &[
            // Nothing ran: the steps without dependencies.
            (&[false; 5], &[], &[0, 4]),
            // a and e started, none ended: nothing more.
            (&[true, false, false, false, true], &[], &[]),
            // a succeeded: b and c together.
            (&[true, false, false, false, true], &[("a", Succeeded)], &[1, 2]),
            // b done, c still going: d waits for both.
            (&[true, true, true, false, true], &[("a", Succeeded), ("b", Succeeded)], &[]),
            // c failed but ignoreErrors: d goes on.
            (
                &[true, true, true, false, true],
                &[("a", Succeeded), ("b", Succeeded), ("c", FailedIgnored)],
                &[3],
            ),
            // A failure, a timeout, a cancel or a skip holds every dependent back.
            (&[true, false, false, false, true], &[("a", Failed)], &[]),
            (&[true, false, false, false, true], &[("a", TimedOut)], &[]),
            (
                &[true, true, true, false, true],
                &[("a", Succeeded), ("b", Succeeded), ("c", Canceled)],
                &[],
            ),
            (
                &[true, true, true, false, true],
                &[("a", Succeeded), ("b", Skipped), ("c", Succeeded)],
                &[],
            ),
            // A step started is never started again.
            (&[true; 5], &[("a", Succeeded), ("b", Succeeded), ("c", Succeeded)], &[]),
        ];
        for (started, ended, want) in table {
            let done: HashMap<String, StepStatus> = ended.iter().map(|(id, s)| (id.to_string(), *s)).collect();
            assert_eq!(ready(&when, started, &done), *want, "started {started:?}, ended {ended:?}");
        }
    }

    #[test]
    fn a_dependency_that_is_no_step_never_lets_it_start() {
        let graph = [ids(&["nowhere"])];
        let when: Vec<&[String]> = graph.iter().map(Vec::as_slice).collect();
        assert!(ready(&when, &[false], &HashMap::new()).is_empty());
    }
}
