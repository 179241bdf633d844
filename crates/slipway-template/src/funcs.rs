//! Go's built-in template functions and the sprig functions task files use.

use base64::Engine as _;
use serde_json::{Map, Value};

const NAMES: &[&str] = &[
    // Go built-ins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "urlquery",
    "html",
    "js",
    // sprig.
    "b64enc",
    "b64dec",
    "quote",
    "squote",
    "upper",
    "lower",
    "title",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "default",
    "empty",
    "coalesce",
    "toJson",
    "toString",
    "join",
    "split",
    "splitList",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "list",
    "dict",
    "repeat",
    "substr",
    "nospace",
    "trunc",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "atoi",
    "int",
    "ternary",
    "first",
    "last",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Go's idea of truth: false, 0, nil and empty strings or collections are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// How `{{ value }}` prints, as Go's `fmt.Print` would (null prints empty).
pub fn print_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(print_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.iter().map(|k| format!("{k}:{}", print_value(&m[*k]))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn s(v: &Value) -> String {
    print_value(v)
}

/// Roughly the bytes `v` occupies (and at least the length it prints as), or `None`
/// once that passes `cap`: the walk stops there, so weighing a huge value is cheap.
pub fn weight(v: &Value, cap: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::String(t) => t.len() + 24,
            Value::Array(a) => {
                stack.extend(a.iter());
                24
            }
            Value::Object(m) => {
                for (k, x) in m {
                    total = total.saturating_add(k.len() + 24);
                    stack.push(x);
                }
                24
            }
            _ => 16,
        });
        if total > cap {
            return None;
        }
    }
    Some(total)
}

fn too_big(cap: usize) -> String {
    format!("the result would be larger than {} bytes (the limit)", cap)
}

/// Joins printed values with `sep`, refusing before the result passes `cap`.
fn join_within<'a>(parts: impl Iterator<Item = &'a Value>, sep: &str, cap: usize, quote: fn(&str) -> String) -> Result<String, String> {
    let mut out = String::new();
    for (i, v) in parts.enumerate() {
        let piece = quote(&s(v));
        if out.len() + sep.len() + piece.len() > cap {
            return Err(too_big(cap));
        }
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&piece);
    }
    Ok(out)
}

fn as_is(t: &str) -> String {
    t.to_string()
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_string()),
        Value::String(t) => t.trim().parse::<f64>().map_err(|_| format!("{t:?} is not a number")),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Null => Ok(0.0),
        other => Err(format!("{} is not a number", print_value(other))),
    }
}

fn int_value(f: f64) -> Value {
    Value::from(f as i64)
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(_), Value::Number(_)) => num(a)?.partial_cmp(&num(b)?).ok_or_else(|| "incomparable".into()),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            print_value(a),
            print_value(b)
        )),
    }
}

fn need(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of args for {name}: want {n} got {}", args.len()))
    }
}

/// Go's `%q` for the characters task files hold.
fn go_quote(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn sprintf(format: &str, args: &[Value], cap: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => "%".to_string(),
            Some('q') => go_quote(&it.next().map(s).unwrap_or_default()),
            Some('d') => it
                .next()
                .map(|v| num(v).map(|f| (f as i64).to_string()).unwrap_or_else(|_| s(v)))
                .unwrap_or_default(),
            Some(_) => it.next().map(s).unwrap_or_default(),
            None => "%".to_string(),
        };
        if out.len() + piece.len() > cap {
            return Err(too_big(cap));
        }
        out.push_str(&piece);
    }
    Ok(out)
}

/// `repeat`, `replace` and `split*` can make far more than they are given: their size
/// is worked out before anything is allocated.
fn check_size(bytes: u128, cap: usize) -> Result<(), String> {
    if bytes > cap as u128 {
        Err(too_big(cap))
    } else {
        Ok(())
    }
}

/// How many pieces splitting `text` at `sep` gives (Go splits "" into runes).
fn piece_count(text: &str, sep: &str) -> usize {
    if sep.is_empty() {
        text.chars().count()
    } else {
        text.matches(sep).count() + 1
    }
}

/// Calls `name`; a result that would be larger than `cap` bytes is an error.
pub fn call(name: &str, args: Vec<Value>, cap: usize) -> Result<Value, String> {
    logic(name, &args, cap)
        .or_else(|| text(name, &args, cap))
        .or_else(|| values(name, &args, cap))
        .or_else(|| lists(name, &args, cap))
        .or_else(|| math(name, &args))
        .unwrap_or_else(|| Err(format!("function {name:?} not defined")))
}

/// Go's own functions: logic, lengths, indexes, printing and comparisons. `None` for a name it does not define.
fn logic(name: &str, a: &[Value], cap: usize) -> Option<Result<Value, String>> {
    let run = || -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "and" => {
                let mut last = Value::Bool(true);
                for v in a {
                    last = v.clone();
                    if !truthy(v) {
                        break;
                    }
                }
                last
            }
            "or" => {
                let mut last = Value::Bool(false);
                for v in a {
                    last = v.clone();
                    if truthy(v) {
                        break;
                    }
                }
                last
            }
            "not" => {
                need(a, 1, name)?;
                Value::Bool(!truthy(&a[0]))
            }
            "len" => {
                need(a, 1, name)?;
                Value::from(match &a[0] {
                    Value::String(t) => t.len(),
                    Value::Array(v) => v.len(),
                    Value::Object(m) => m.len(),
                    Value::Null => 0,
                    other => return Err(format!("len of {}", print_value(other))),
                })
            }
            "index" => {
                let mut cur = a.first().cloned().unwrap_or(Value::Null);
                for k in &a[1.min(a.len())..] {
                    cur = match (&cur, k) {
                        (Value::Array(v), k) => v.get(num(k)? as usize).cloned().ok_or("index out of range")?,
                        (Value::Object(m), k) => m.get(&s(k)).cloned().unwrap_or(Value::Null),
                        (Value::Null, _) => Value::Null,
                        _ => return Err("can't index item".into()),
                    };
                }
                cur
            }
            "print" => Value::String(join_within(a.iter(), "", cap, as_is)?),
            "println" => Value::String(join_within(a.iter(), " ", cap.saturating_sub(1), as_is)? + "\n"),
            "printf" => {
                let (f, rest) = a.split_first().ok_or("printf needs a format")?;
                Value::String(sprintf(&s(f), rest, cap)?)
            }
            "eq" => {
                let (first, rest) = a.split_first().ok_or("missing argument for comparison")?;
                Value::Bool(rest.iter().any(|b| equal(first, b)))
            }
            "ne" => {
                need(a, 2, name)?;
                Value::Bool(!equal(&a[0], &a[1]))
            }
            "lt" | "le" | "gt" | "ge" => {
                need(a, 2, name)?;
                let o = compare(&a[0], &a[1])?;
                use std::cmp::Ordering::*;
                Value::Bool(match name {
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                })
            }
            _ => return Ok(None),
        }))
    };
    run().transpose()
}

/// sprig's text functions: encodings, quoting, case, trimming, defaults. `None` for a name it does not define.
fn text(name: &str, a: &[Value], cap: usize) -> Option<Result<Value, String>> {
    let run = || -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "urlquery" | "html" | "js" => Value::String(join_within(a.iter(), "", cap, as_is)?),
            "b64enc" => {
                need(a, 1, name)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(s(&a[0])))
            }
            "b64dec" => {
                need(a, 1, name)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s(&a[0]).trim())
                    .map_err(|e| format!("not base64: {e}"))?;
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            "quote" => Value::String(join_within(a.iter().filter(|v| !v.is_null()), " ", cap, go_quote)?),
            "squote" => Value::String(join_within(a.iter().filter(|v| !v.is_null()), " ", cap, |t| format!("'{t}'"))?),
            "upper" => Value::String(s(a.first().unwrap_or(&Value::Null)).to_uppercase()),
            "lower" => Value::String(s(a.first().unwrap_or(&Value::Null)).to_lowercase()),
            "title" => Value::String(
                s(a.first().unwrap_or(&Value::Null))
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "trim" => Value::String(s(a.first().unwrap_or(&Value::Null)).trim().to_string()),
            "nospace" => Value::String(
                s(a.first().unwrap_or(&Value::Null))
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect(),
            ),
            "trimAll" => {
                need(a, 2, name)?;
                let cut: Vec<char> = s(&a[0]).chars().collect();
                Value::String(s(&a[1]).trim_matches(|c| cut.contains(&c)).to_string())
            }
            "trimPrefix" => {
                need(a, 2, name)?;
                let t = s(&a[1]);
                Value::String(t.strip_prefix(&s(&a[0])).unwrap_or(&t).to_string())
            }
            "trimSuffix" => {
                need(a, 2, name)?;
                let t = s(&a[1]);
                Value::String(t.strip_suffix(&s(&a[0])).unwrap_or(&t).to_string())
            }
            "replace" => {
                need(a, 3, name)?;
                let (from, to, text) = (s(&a[0]), s(&a[1]), s(&a[2]));
                let hits = if from.is_empty() {
                    text.chars().count() + 1
                } else {
                    text.matches(from.as_str()).count()
                };
                check_size(text.len() as u128 + hits as u128 * to.len() as u128, cap)?;
                Value::String(text.replace(&from, &to))
            }
            _ => return Ok(None),
        }))
    };
    run().transpose()
}

/// sprig's defaults and conversions, and the text functions that split and join. `None`
/// for a name it does not define.
fn values(name: &str, a: &[Value], cap: usize) -> Option<Result<Value, String>> {
    let run = || -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "default" => {
                let d = a.first().cloned().unwrap_or(Value::Null);
                match a.get(1) {
                    Some(given) if truthy(given) => given.clone(),
                    _ => d,
                }
            }
            "empty" => Value::Bool(!a.first().is_some_and(truthy)),
            "coalesce" => a.iter().find(|v| truthy(v)).cloned().unwrap_or(Value::Null),
            "ternary" => {
                need(a, 3, name)?;
                if truthy(&a[2]) {
                    a[0].clone()
                } else {
                    a[1].clone()
                }
            }
            "toJson" => {
                let v = a.first().unwrap_or(&Value::Null);
                // Escapes can make JSON up to six times the printed size; check first.
                check_size(weight(v, cap).map(|w| w as u128).unwrap_or(u128::MAX), cap)?;
                let text = serde_json::to_string(v).map_err(|e| e.to_string())?;
                check_size(text.len() as u128, cap)?;
                Value::String(text)
            }
            "toString" => Value::String(s(a.first().unwrap_or(&Value::Null))),
            "join" => {
                need(a, 2, name)?;
                let sep = s(&a[0]);
                match &a[1] {
                    Value::Array(v) => Value::String(join_within(v.iter(), &sep, cap, as_is)?),
                    Value::Null => Value::String(String::new()),
                    other => Value::String(s(other)),
                }
            }
            "split" => {
                need(a, 2, name)?;
                let (sep, text) = (s(&a[0]), s(&a[1]));
                check_size(text.len() as u128 + piece_count(&text, &sep) as u128 * 64, cap)?;
                let mut m = Map::new();
                for (i, part) in text.split(sep.as_str()).enumerate() {
                    m.insert(format!("_{i}"), Value::String(part.to_string()));
                }
                Value::Object(m)
            }
            "splitList" => {
                need(a, 2, name)?;
                let (sep, text) = (s(&a[0]), s(&a[1]));
                check_size(text.len() as u128 + piece_count(&text, &sep) as u128 * 48, cap)?;
                Value::Array(text.split(sep.as_str()).map(|p| Value::String(p.to_string())).collect())
            }
            "contains" => {
                need(a, 2, name)?;
                Value::Bool(s(&a[1]).contains(&s(&a[0])))
            }
            "hasPrefix" => {
                need(a, 2, name)?;
                Value::Bool(s(&a[1]).starts_with(&s(&a[0])))
            }
            "hasSuffix" => {
                need(a, 2, name)?;
                Value::Bool(s(&a[1]).ends_with(&s(&a[0])))
            }
            _ => return Ok(None),
        }))
    };
    run().transpose()
}

/// sprig's lists and dictionaries, and the text functions that make or read them. `None` for a name it does not define.
fn lists(name: &str, a: &[Value], cap: usize) -> Option<Result<Value, String>> {
    let run = || -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "list" => Value::Array(a.to_vec()),
            "dict" => {
                let mut m = Map::new();
                for pair in a.chunks(2) {
                    m.insert(s(&pair[0]), pair.get(1).cloned().unwrap_or(Value::String(String::new())));
                }
                Value::Object(m)
            }
            "first" => match a.first() {
                Some(Value::Array(v)) => v.first().cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            "last" => match a.first() {
                Some(Value::Array(v)) => v.last().cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            },
            "repeat" => {
                need(a, 2, name)?;
                let text = s(&a[1]);
                let count = num(&a[0])?.max(0.0);
                check_size((count.min(u64::MAX as f64) as u128).saturating_mul(text.len() as u128), cap)?;
                Value::String(text.repeat(count as usize))
            }
            "substr" => {
                need(a, 3, name)?;
                let chars: Vec<char> = s(&a[2]).chars().collect();
                let start = (num(&a[0])?.max(0.0) as usize).min(chars.len());
                let end = num(&a[1])?;
                let end = if end < 0.0 { chars.len() } else { (end as usize).min(chars.len()) };
                Value::String(chars[start..end.max(start)].iter().collect())
            }
            "trunc" => {
                need(a, 2, name)?;
                let n = num(&a[0])? as usize;
                Value::String(s(&a[1]).chars().take(n).collect())
            }
            _ => return Ok(None),
        }))
    };
    run().transpose()
}

/// sprig's arithmetic, Go's int semantics where they differ. `None` for a name it does not define.
fn math(name: &str, a: &[Value]) -> Option<Result<Value, String>> {
    let run = || -> Result<Option<Value>, String> {
        Ok(Some(match name {
            "add" => int_value(a.iter().map(num).sum::<Result<f64, _>>()?),
            "mul" => int_value(a.iter().map(num).product::<Result<f64, _>>()?),
            "sub" => {
                need(a, 2, name)?;
                int_value(num(&a[0])? - num(&a[1])?)
            }
            "div" => {
                need(a, 2, name)?;
                let d = num(&a[1])?;
                if d == 0.0 {
                    return Err("division by zero".into());
                }
                int_value((num(&a[0])? / d).trunc())
            }
            "mod" => {
                need(a, 2, name)?;
                let d = num(&a[1])? as i64;
                if d == 0 {
                    return Err("division by zero".into());
                }
                // i64::MIN % -1 overflows; Go answers 0.
                Value::from((num(&a[0])? as i64).wrapping_rem(d))
            }
            "atoi" | "int" => int_value(num(a.first().unwrap_or(&Value::Null)).unwrap_or(0.0)),
            _ => return Ok(None),
        }))
    };
    run().transpose()
}
