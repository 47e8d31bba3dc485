//! Test support: a typed answer against its schema in the OpenAPI
//! document, field by field (nested objects and arrays too). Each answer
//! module's tests serialise a full example of its type through this, so a
//! field added, renamed or dropped in the code, or in the document, fails
//! until the two agree again. (Schemathesis checks the running binary's
//! answers against the same document in `tests/schemathesis.rs`.)

use serde::Serialize;
use serde_json::Value;

/// Panics unless `value` serialises to exactly the fields that the
/// component schema `name` documents.
pub fn assert_documented(name: &str, value: &impl Serialize) {
    let doc: Value = serde_json::from_str(super::ops::OPENAPI).expect("the document is JSON");
    let schema = doc["components"]["schemas"][name].clone();
    assert!(schema.is_object(), "no schema '{name}' in the OpenAPI document");
    let value = serde_json::to_value(value).expect("answers serialise");
    let mut problems = Vec::new();
    check(&doc, &schema, &value, name, &mut problems);
    assert!(
        problems.is_empty(),
        "{name} and the OpenAPI document disagree:\n{}",
        problems.join("\n")
    );
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        return;
    }
    for alt in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(alt).and_then(Value::as_array) {
            // Of the alternatives that document an object (or items), the
            // value must fit one (a tagged enum is one per variant); if none
            // fits, the closest one's disagreements are reported.
            let mut closest: Option<Vec<String>> = None;
            for o in options {
                let o = resolve(doc, o);
                if o.get("properties").is_none() && o.get("items").is_none() {
                    continue;
                }
                let mut found = Vec::new();
                check(doc, o, value, path, &mut found);
                if found.is_empty() {
                    return;
                }
                if closest.as_ref().is_none_or(|c| found.len() < c.len()) {
                    closest = Some(found);
                }
            }
            problems.extend(closest.unwrap_or_default());
            return;
        }
    }
    match value {
        Value::Object(fields) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else { return };
            // A schema that allows more fields than it names (`additionalProperties`
            // set and not false) is not held to its list.
            let open = schema.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false));
            for (k, v) in fields {
                match props.get(k) {
                    Some(s) => check(doc, s, v, &format!("{path}.{k}"), problems),
                    None if open => {}
                    None => problems.push(format!("{path}.{k} is sent but not documented")),
                }
            }
            for k in props.keys() {
                if !fields.contains_key(k) {
                    problems.push(format!("{path}.{k} is documented but never sent"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(doc, item, v, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Session<'a> {
        token: &'a str,
        name: &'a str,
        role: &'a str,
        device: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        extra: Option<u8>,
    }

    fn session(expires_at: Option<&str>, extra: Option<u8>) -> Session<'_> {
        Session { token: "t", name: "n", role: "door", device: "d", expires_at, extra }
    }

    #[test]
    fn the_documented_fields_pass() {
        assert_documented("Session", &session(Some("2026-11-28T08:00:00Z"), None));
    }

    #[test]
    #[should_panic(expected = "Session.extra is sent but not documented")]
    fn an_undocumented_field_fails() {
        assert_documented("Session", &session(Some("2026-11-28T08:00:00Z"), Some(1)));
    }

    #[test]
    #[should_panic(expected = "Session.expires_at is documented but never sent")]
    fn a_missing_field_fails() {
        assert_documented("Session", &session(None, None));
    }
}
