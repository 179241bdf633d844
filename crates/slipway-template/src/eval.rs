//! Executes a parsed template over JSON data.

use crate::funcs;
use crate::parse::{Arg, Branch, Node, Pipeline};
use crate::TemplateError;
use serde_json::Value;

struct State<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    out: String,
}

pub fn execute(nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
    let mut st = State {
        root: data,
        vars: vec![(String::new(), data.clone())],
        out: String::new(),
    };
    walk(&mut st, nodes, data)?;
    Ok(st.out)
}

fn walk(st: &mut State, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => st.out.push_str(t),
            Node::Action(p) => {
                let v = pipeline(st, p, dot)?;
                if p.vars.is_empty() {
                    st.out.push_str(&funcs::print_value(&v));
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
            Node::Range(b) => range(st, b, dot)?,
        }
    }
    Ok(())
}

fn range(st: &mut State, b: &Branch, dot: &Value) -> Result<(), TemplateError> {
    let mark = st.vars.len();
    // The range's own variables are bound per element, not to the whole value.
    let mut head = b.pipe.clone();
    let names = std::mem::take(&mut head.vars);
    let v = pipeline(st, &head, dot)?;
    let items: Vec<(Value, Value)> = match &v {
        Value::Array(a) => a.iter().enumerate().map(|(i, e)| (Value::from(i), e.clone())).collect(),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter().map(|k| (Value::String(k.clone()), m[k].clone())).collect()
        }
        Value::Null => Vec::new(),
        Value::Number(n) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0)).map(|i| (Value::from(i), Value::from(i))).collect(),
        other => {
            return Err(TemplateError::new(
                b.pipe.line,
                format!("range can't iterate over {}", funcs::print_value(other)),
            ))
        }
    };
    if items.is_empty() {
        let res = walk(st, &b.otherwise, dot);
        st.vars.truncate(mark);
        return res;
    }
    for (key, elem) in items {
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
        if let Err(e) = res {
            st.vars.truncate(mark);
            return Err(e);
        }
    }
    st.vars.truncate(mark);
    Ok(())
}

fn pipeline(st: &mut State, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for cmd in &p.cmds {
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
                funcs::call(name, args).map_err(|m| TemplateError::new(p.line, format!("error calling {name}: {m}")))?
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

fn arg(st: &mut State, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match a {
        Arg::Field(path) => lookup(dot, path),
        Arg::Var(name, path) => {
            let base = if name.is_empty() {
                st.root.clone()
            } else {
                match st.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => return Err(TemplateError::new(0, format!("undefined variable: ${name}"))),
                }
            };
            lookup(&base, path)
        }
        Arg::Func(name) => funcs::call(name, Vec::new()).map_err(|m| TemplateError::new(0, format!("error calling {name}: {m}")))?,
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(v, true) => Value::from(*v as i64),
        Arg::Num(v, false) => serde_json::Number::from_f64(*v).map(Value::Number).unwrap_or(Value::Null),
        Arg::Bool(b) => Value::Bool(*b),
        Arg::Nil => Value::Null,
        Arg::Sub(p, chain) => {
            let v = pipeline(st, p, dot)?;
            lookup(&v, chain)
        }
    })
}

/// Field access; anything missing is null, which prints as the empty string.
fn lookup(v: &Value, path: &[String]) -> Value {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return Value::Null,
        }
    }
    cur.clone()
}
