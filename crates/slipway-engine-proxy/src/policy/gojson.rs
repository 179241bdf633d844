//! Reading JSON objects the way the engine's Go decoder will.
//!
//! `encoding/json` matches an object key to a struct field case-insensitively (and folds
//! `ſ` to `s`, the Kelvin sign to `k`), and of several keys naming one field the last
//! wins. A check that reads `"Privileged"` would miss `"privileged": true`, so fields of
//! the structs the policy inspects are looked up by their folded name, and a struct
//! object that names one field twice is refused. Map-typed objects (`Labels`,
//! `EndpointsConfig`, `PortBindings`) keep exact keys, as in Go.

use super::Refusal;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(crate) type Object = Map<String, Value>;

fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `value` as a Go struct: an object (null counts as empty) without two keys for one field.
pub(crate) fn strukt<'v>(value: &'v mut Value, what: &str) -> Result<&'v mut Object, Refusal> {
    if value.is_null() {
        *value = Value::Object(Map::new());
    }
    let Value::Object(map) = value else {
        return Err(Refusal::bad_request(format!("{what} must be a JSON object")));
    };
    let mut seen: HashMap<String, &str> = HashMap::new();
    for key in map.keys() {
        if let Some(first) = seen.insert(fold(key), key) {
            return Err(Refusal::bad_request(format!(
                "{what} names one field twice ({first:?} and {key:?})"
            )));
        }
    }
    Ok(map)
}

fn key_of(map: &Object, field: &str) -> Option<String> {
    let folded = fold(field);
    map.keys().find(|k| fold(k) == folded).cloned()
}

/// The value of `field`, unless absent or null.
pub(crate) fn get<'m>(map: &'m Object, field: &str) -> Option<&'m Value> {
    key_of(map, field).and_then(|k| map.get(&k)).filter(|v| !v.is_null())
}

pub(crate) fn get_mut<'m>(map: &'m mut Object, field: &str) -> Option<&'m mut Value> {
    let key = key_of(map, field)?;
    map.get_mut(&key).filter(|v| !v.is_null())
}

/// Sets `field`, under the key the client used for it if there is one.
pub(crate) fn set(map: &mut Object, field: &str, value: Value) {
    let key = key_of(map, field).unwrap_or_else(|| field.to_string());
    map.insert(key, value);
}

/// The nested struct at `field`, created empty when absent or null.
pub(crate) fn strukt_at<'m>(map: &'m mut Object, field: &str) -> Result<&'m mut Object, Refusal> {
    let key = key_of(map, field).unwrap_or_else(|| field.to_string());
    strukt(map.entry(key).or_insert(Value::Null), field)
}

/// A string field; absent and null read as "".
pub(crate) fn string<'m>(map: &'m Object, field: &str) -> Result<&'m str, Refusal> {
    match get(map, field) {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Refusal::bad_request(format!("{field} must be a string"))),
    }
}

/// Whether a field says anything: not absent, null, false, 0, "", [] or {}. Values Go
/// would not decode count as set, so a refusal errs on the side of refusing.
pub(crate) fn is_set(map: &Object, field: &str) -> bool {
    match get(map, field) {
        None | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

/// A `[]string` field (Docker's `StrSlice` also takes a lone string); absent is empty.
pub(crate) fn strings(map: &Object, field: &str) -> Result<Vec<String>, Refusal> {
    match get(map, field) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Refusal::bad_request(format!("{field} must be a list of strings"))),
            })
            .collect(),
        Some(_) => Err(Refusal::bad_request(format!("{field} must be a list of strings"))),
    }
}

/// Sets the label on a `Labels` map field, overwriting what the client gave.
pub(crate) fn stamp_label(map: &mut Object, (key, value): (&str, &str)) -> Result<(), Refusal> {
    let k = key_of(map, "Labels").unwrap_or_else(|| "Labels".to_string());
    let labels = map.entry(k).or_insert(Value::Null);
    if labels.is_null() {
        *labels = Value::Object(Map::new());
    }
    match labels {
        Value::Object(labels) => {
            labels.insert(key.to_string(), Value::String(value.to_string()));
            Ok(())
        }
        _ => Err(Refusal::bad_request("Labels must be a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_found_whatever_their_case() {
        let mut v = json!({"privileged": true, "ſecurityOpt": ["x"]});
        let map = strukt(&mut v, "HostConfig").unwrap();
        assert!(is_set(map, "Privileged"));
        assert_eq!(strings(map, "SecurityOpt").unwrap(), vec!["x"]);
    }

    #[test]
    fn a_field_named_twice_is_refused() {
        let mut v = json!({"Privileged": false, "privileged": true});
        let err = strukt(&mut v, "HostConfig").unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[test]
    fn set_keeps_the_clients_spelling() {
        let mut v = json!({"networkmode": "host"});
        let map = strukt(&mut v, "HostConfig").unwrap();
        set(map, "NetworkMode", json!("none"));
        assert_eq!(v, json!({"networkmode": "none"}));
    }

    #[test]
    fn serde_keeps_the_last_of_duplicate_keys_as_go_does() {
        let v: Value = serde_json::from_str(r#"{"A": 1, "A": 2}"#).unwrap();
        assert_eq!(v, json!({"A": 2}));
    }
}
