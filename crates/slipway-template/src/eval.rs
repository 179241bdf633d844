//! Executes a parsed template over JSON data, within [`Limits`].

use crate::funcs;
use crate::parse::{Arg, Branch, Node, Pipeline};
use crate::{Limits, TemplateError};
use serde_json::Value;
use std::time::Instant;

/// What one execution has spent, checked against its limits as it goes.
pub(crate) struct Budget<'l> {
    limits: &'l Limits,
    steps: u64,
    work_bytes: u64,
    started: Instant,
}

impl Budget<'_> {
    /// One evaluation step; the clock is read every few thousand steps.
    fn step(&mut self, line: usize) -> Result<(), TemplateError> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(TemplateError::new(
                line,
                format!(
                    "the template took more than {} evaluation steps (the limit); is a range nested too deep?",
                    self.limits.max_steps
                ),
            ));
        }
        if self.steps % 4096 == 0 && self.started.elapsed() > self.limits.max_duration {
            return Err(TemplateError::new(
                line,
                format!(
                    "the template ran longer than {} s (the limit)",
                    self.limits.max_duration.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }

    /// Accounts for `bytes` of values made or copied.
    fn spend(&mut self, line: usize, bytes: usize) -> Result<(), TemplateError> {
        self.work_bytes = self.work_bytes.saturating_add(bytes as u64);
        if self.work_bytes > self.limits.max_work_bytes {
            return Err(TemplateError::new(
                line,
                format!(
                    "the template made more than {} MiB of values (the limit)",
                    self.limits.max_work_bytes >> 20
                ),
            ));
        }
        Ok(())
    }

    /// The largest value a function may return now.
    fn cap(&self) -> usize {
        let left = self.limits.max_work_bytes.saturating_sub(self.work_bytes);
        self.limits.max_output_bytes.min(usize::try_from(left).unwrap_or(usize::MAX))
    }
}

struct State<'a, 'l> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    out: String,
    budget: Budget<'l>,
    /// The line of the action being evaluated, for messages.
    line: usize,
}

pub fn execute(nodes: &[Node], data: &Value, limits: &Limits) -> Result<String, TemplateError> {
    let mut st = State {
        root: data,
        vars: vec![(String::new(), data.clone())],
        out: String::new(),
        budget: Budget {
            limits,
            steps: 0,
            work_bytes: 0,
            started: Instant::now(),
        },
        line: 1,
    };
    walk(&mut st, nodes, data)?;
    Ok(st.out)
}

impl State<'_, '_> {
    fn emit(&mut self, text: &str) -> Result<(), TemplateError> {
        if self.out.len() + text.len() > self.budget.limits.max_output_bytes {
            return Err(TemplateError::new(
                self.line,
                format!(
                    "the rendered task file would be larger than {} MiB (the limit)",
                    self.budget.limits.max_output_bytes >> 20
                ),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    /// A copy of `v`, paid for from the budget.
    fn copy(&mut self, v: &Value) -> Result<Value, TemplateError> {
        self.budget.pay_for(self.line, v)?;
        Ok(v.clone())
    }
}

impl Budget<'_> {
    /// Pays for a copy of `v` before it is made; a value larger than any result may be
    /// is refused outright.
    fn pay_for(&mut self, line: usize, v: &Value) -> Result<(), TemplateError> {
        let w = self.weigh(line, v)?;
        self.spend(line, w)
    }

    /// `v`'s size, or an error naming the limit it passes.
    fn weigh(&self, line: usize, v: &Value) -> Result<usize, TemplateError> {
        let cap = self.cap();
        funcs::weight(v, cap).ok_or_else(|| {
            TemplateError::new(
                line,
                format!(
                    "a value would be larger than {} MiB (the limit), or the template made more than {} MiB of values",
                    self.limits.max_output_bytes >> 20,
                    self.limits.max_work_bytes >> 20
                ),
            )
        })
    }
}

fn walk(st: &mut State, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
    for node in nodes {
        st.budget.step(st.line)?;
        match node {
            Node::Text(t) => st.emit(t)?,
            Node::Action(p) => {
                let v = pipeline(st, p, dot)?;
                if p.vars.is_empty() {
                    let text = funcs::print_value(&v);
                    st.emit(&text)?;
                }
            }
            Node::If(b) => {
                let mark = st.vars.len();
                let cond = pipeline(st, &b.pipe, dot)?;
                let res = walk(st, if funcs::truthy(&cond) { &b.body } else { &b.otherwise }, dot);
                st.vars.truncate(mark);
                res?
            }
            Node::With(b) => {
                let mark = st.vars.len();
                let v = pipeline(st, &b.pipe, dot)?;
                let res = if funcs::truthy(&v) {
                    walk(st, &b.body, &v)
                } else {
                    walk(st, &b.otherwise, dot)
                };
                st.vars.truncate(mark);
                res?
            }
            Node::Range(b) => {
                let mark = st.vars.len();
                let res = range(st, b, dot);
                st.vars.truncate(mark);
                res?
            }
        }
    }
    Ok(())
}

fn range(st: &mut State, b: &Branch, dot: &Value) -> Result<(), TemplateError> {
    // The range's own variables are bound per element, not to the whole value.
    let mut head = b.pipe.clone();
    let names = std::mem::take(&mut head.vars);
    let v = pipeline(st, &head, dot)?;
    let count = match &v {
        Value::Array(a) => a.len() as u64,
        Value::Object(m) => m.len() as u64,
        Value::Null => 0,
        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
        other => {
            return Err(TemplateError::new(
                b.pipe.line,
                format!("range can't iterate over {}", funcs::print_value(other)),
            ))
        }
    };
    if count == 0 {
        return walk(st, &b.otherwise, dot);
    }
    let keys: Vec<&String> = match &v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys
        }
        _ => Vec::new(),
    };
    // Elements are taken one at a time (an integer range is never materialised), so
    // the step budget stops a huge range before it costs memory.
    for i in 0..count {
        st.budget.step(b.pipe.line)?;
        let (key, elem) = match &v {
            Value::Array(a) => (Value::from(i), st.copy(&a[i as usize])?),
            Value::Object(m) => {
                let k = keys[i as usize];
                (Value::String(k.clone()), st.copy(&m[k])?)
            }
            _ => (Value::from(i), Value::from(i)),
        };
        let inner = st.vars.len();
        match names.as_slice() {
            [] => {}
            [one] => st.vars.push((one.clone(), elem.clone())),
            [k, e, ..] => {
                st.vars.push((k.clone(), key));
                st.vars.push((e.clone(), elem.clone()));
            }
        }
        let res = walk(st, &b.body, &elem);
        st.vars.truncate(inner);
        res?;
    }
    Ok(())
}

fn pipeline(st: &mut State, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    st.line = p.line;
    let mut prev: Option<Value> = None;
    for cmd in &p.cmds {
        st.budget.step(p.line)?;
        let first = &cmd.args[0];
        let v = match first {
            Arg::Func(name) => {
                let mut args = Vec::with_capacity(cmd.args.len());
                for a in &cmd.args[1..] {
                    args.push(arg(st, a, dot)?);
                }
                if let Some(pv) = prev.take() {
                    args.push(pv);
                }
                call(st, name, args)?
            }
            _ => {
                if cmd.args.len() > 1 || prev.is_some() {
                    return Err(TemplateError::new(p.line, "can't give argument to non-function"));
                }
                arg(st, first, dot)?
            }
        };
        prev = Some(v);
    }
    let v = prev.unwrap_or(Value::Null);
    if !p.vars.is_empty() {
        if p.declare {
            st.vars.push((p.vars[0].clone(), v.clone()));
        } else {
            let name = &p.vars[0];
            match st.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v.clone(),
                None => return Err(TemplateError::new(p.line, format!("undefined variable: ${name}"))),
            }
        }
    }
    Ok(v)
}

/// Calls a function with the room it may fill, and pays for what it returned.
fn call(st: &mut State, name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let line = st.line;
    let cap = st.budget.cap();
    let v = funcs::call(name, args, cap).map_err(|m| TemplateError::new(line, format!("error calling {name}: {m}")))?;
    let w = st.budget.weigh(line, &v)?;
    st.budget.spend(line, w)?;
    Ok(v)
}

fn arg(st: &mut State, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match a {
        Arg::Field(path) => {
            let found = lookup(dot, path);
            st.copy(found)?
        }
        Arg::Var(name, path) => {
            let root = st.root;
            let found = if name.is_empty() {
                lookup(root, path)
            } else {
                match st.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => {
                        let v = lookup(v, path);
                        st.budget.pay_for(st.line, v)?;
                        return Ok(v.clone());
                    }
                    None => return Err(TemplateError::new(st.line, format!("undefined variable: ${name}"))),
                }
            };
            st.copy(found)?
        }
        Arg::Func(name) => call(st, name, Vec::new())?,
        Arg::Str(s) => {
            // A literal is copied each time it is used: a long one costs its length.
            st.budget.spend(st.line, s.len())?;
            Value::String(s.clone())
        }
        Arg::Num(v, true) => Value::from(*v as i64),
        Arg::Num(v, false) => serde_json::Number::from_f64(*v).map(Value::Number).unwrap_or(Value::Null),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Sub(p, chain) => {
            let v = pipeline(st, p, dot)?;
            lookup(&v, chain).clone()
        }
    })
}

static NULL: Value = Value::Null;

/// Field access; anything missing is null, which prints as the empty string.
fn lookup<'v>(v: &'v Value, path: &[String]) -> &'v Value {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return &NULL,
        }
    }
    cur
}
