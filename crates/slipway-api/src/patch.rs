//! JSON merge patch (RFC 7386) of a stored spec, as `PATCH` of a task or a webhook
//! applies it: the one implementation both use.

use serde_json::Value;

/// Applies `patch` to `target`: a `null` removes a member, an object merges into an
/// object, anything else replaces. Members named in `whole` are replaced as given
/// rather than merged (a webhook's `customHeaders`: given, they replace them all).
pub fn merge(target: &mut Value, patch: &Value, whole: &[&str]) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if whole.contains(&k.as_str()) {
                    t.insert(k.clone(), v.clone());
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v, &[]);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn rfc_7386_with_members_replaced_whole() {
        let mut t = json!({"a": 1, "b": {"x": 1, "y": 2}, "h": {"k": "v", "l": "w"}, "gone": true});
        super::merge(
            &mut t,
            &json!({"a": 2, "b": {"y": null, "z": 3}, "h": {"m": "n"}, "gone": null}),
            &["h"],
        );
        assert_eq!(t, json!({"a": 2, "b": {"x": 1, "z": 3}, "h": {"m": "n"}}));
        let mut t = json!({"a": 1});
        super::merge(&mut t, &json!([1]), &[]);
        assert_eq!(t, json!([1]));
    }
}
