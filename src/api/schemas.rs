//! The OpenAPI document's body schemas, derived from the Rust types
//! (`schemars`, which follows serde's attributes) instead of written by
//! hand: [`ANSWERS`] names the type of every JSON success answer,
//! [`REQUESTS`] the type every JSON request body is read into, and
//! [`document`] is the checked-in document with those schemas in
//! `components.schemas` and each operation referring to its own. A test
//! holds the checked-in document equal to it, so a field added to a type
//! and not to the document (or the reverse) fails; `scripts/openapi-schemas`
//! writes it (through `venuebox openapi`). Paths, roles and prose stay
//! hand-written in `openapi.json`.
//!
//! A request's limits live on its type as schemars attributes
//! (`#[schemars(length(max = 64))]`): the document states them and
//! `policy::check_lengths` enforces what the document states, so the limit
//! is written once.

use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// One JSON success answer: the operation, its status, and its type's
/// schema (a `$ref` into `components.schemas`).
pub struct Answer {
    pub method: &'static str,
    pub path: &'static str,
    pub status: &'static str,
    schema: fn(&mut SchemaGenerator) -> Schema,
}

const fn answer<T: JsonSchema>(
    method: &'static str,
    path: &'static str,
    status: &'static str,
) -> Answer {
    Answer { method, path, status, schema: |g| g.subschema_for::<T>() }
}

/// One JSON request body: the operation and the schema of the type its
/// handler reads the body into.
pub struct Request {
    pub method: &'static str,
    pub path: &'static str,
    schema: fn(&mut SchemaGenerator) -> Schema,
}

const fn request<T: JsonSchema>(method: &'static str, path: &'static str) -> Request {
    Request { method, path, schema: |g| g.subschema_for::<T>() }
}

/// Every JSON request body, by the type its handler reads.
pub const REQUESTS: &[Request] = &[
    request::<super::ops::SetClock>("put", "/api/v1/clock"),
    request::<super::ops::RehearseBody>("post", "/api/v1/rehearsal"),
    request::<super::session::SignIn>("post", "/api/v1/session"),
    request::<super::pairing::PrintBody>("post", "/api/v1/pairing/print"),
    request::<super::pairing::PairBody>("post", "/api/v1/paired-devices"),
    request::<crate::replication::join::JoinRequest>("post", "/api/v1/standby/join"),
    request::<super::event::ImportRequest>("post", "/api/v1/manifest"),
    request::<super::checkins::CheckinRequest>("post", "/api/v1/checkins"),
    request::<super::sales::WalkupBody>("post", "/api/v1/walkups"),
    request::<super::sales::ClaimBody>("post", "/api/v1/scholarships/claims"),
    request::<super::sales::CloseBody>("post", "/api/v1/orders/{id}/void"),
    request::<super::sales::CloseBody>("post", "/api/v1/orders/{id}/refund"),
    request::<crate::domain::manifest::DropSpec>("post", "/api/v1/drops"),
    request::<crate::domain::manifest::DropSpec>("put", "/api/v1/drops/{id}"),
    request::<super::drops::RestockBody>("post", "/api/v1/drops/{id}/restock"),
    request::<super::drops::HoldBody>("post", "/api/v1/drops/{id}/holds"),
    request::<super::drops::HoldBody>("post", "/api/v1/drops/{id}/sales"),
    request::<super::drops::CheckoutBody>("post", "/api/v1/holds/{id}/checkout"),
    request::<super::captures::CheckBody>("post", "/api/v1/captures/check"),
    request::<super::captures::HideBody>("post", "/api/v1/captures/{sha256}/hide"),
    request::<super::captures::LinkBody>("post", "/api/v1/upload-links"),
    request::<super::devices::InjectBody>("post", "/api/v1/devices/scan"),
    request::<super::sync::FreezeRequest>("put", "/api/v1/sync/manifest-freeze"),
];

/// Every JSON success answer with a type of its own. (`GET
/// /api/v1/openapi.json` answers this document, described by the OpenAPI
/// specification rather than a type.)
pub const ANSWERS: &[Answer] = &[
    answer::<super::ops::Health>("get", "/healthz", "200"),
    answer::<super::standby::PairView>("get", "/api/v1/standby", "200"),
    answer::<crate::replication::join::JoinCode>("post", "/api/v1/standby/codes", "201"),
    answer::<crate::replication::join::JoinBundle>("post", "/api/v1/standby/join", "200"),
    answer::<crate::store::replica::ReplicaState>("post", "/api/v1/standby/promote", "200"),
    answer::<crate::domain::role::Actor>("get", "/api/v1/session", "200"),
    answer::<super::event::EventSummary>("get", "/api/v1/event", "200"),
    answer::<crate::store::ImportOutcome>("post", "/api/v1/manifest", "200"),
    answer::<crate::store::scans::Counts>("get", "/api/v1/stats", "200"),
    answer::<super::sales::Programs>("get", "/api/v1/scholarships", "200"),
    answer::<super::sales::Verified>("get", "/api/v1/receipts/verify", "200"),
    answer::<super::drops::Drops>("get", "/api/v1/drops", "200"),
    answer::<crate::store::drops::DropView>("post", "/api/v1/drops", "201"),
    answer::<crate::store::drops::DropView>("get", "/api/v1/drops/{id}", "200"),
    answer::<crate::store::drops::DropView>("put", "/api/v1/drops/{id}", "200"),
    answer::<crate::store::drops::DropView>("post", "/api/v1/drops/{id}/restock", "200"),
    answer::<super::drops::Ledger>("get", "/api/v1/drops/{id}/ledger", "200"),
    answer::<crate::store::drops::HoldView>("post", "/api/v1/drops/{id}/holds", "201"),
    answer::<super::drops::Ledger>("get", "/api/v1/pool", "200"),
    answer::<super::captures::CapturePage>("get", "/api/v1/creators/{id}/captures", "200"),
    answer::<crate::store::captures::CreatorSummary>("get", "/api/v1/creators/{id}/summary", "200"),
    answer::<super::captures::Present>("post", "/api/v1/captures/check", "200"),
    answer::<crate::store::captures::CaptureView>("post", "/api/v1/captures/{sha256}/hide", "200"),
    answer::<super::captures::UploadLink>("post", "/api/v1/upload-links", "201"),
    answer::<super::devices::DeviceList>("get", "/api/v1/devices", "200"),
    answer::<super::devices::Injected>("post", "/api/v1/devices/scan", "200"),
    answer::<super::devices::SelfTest>("post", "/api/v1/devices/test", "200"),
    answer::<super::devices::Job>("post", "/api/v1/orders/{id}/print", "202"),
    answer::<super::devices::Jobs>("get", "/api/v1/print-jobs", "200"),
    answer::<crate::clock::ClockReport>("put", "/api/v1/clock", "200"),
    answer::<crate::domain::readiness::Report>("post", "/api/v1/rehearsal", "200"),
    answer::<super::session::SignedIn>("post", "/api/v1/session", "200"),
    answer::<super::session::Sessions>("get", "/api/v1/sessions", "200"),
    answer::<super::pairing::NewCode>("post", "/api/v1/pairing-codes", "201"),
    answer::<super::pairing::SlipQueued>("post", "/api/v1/pairing/print", "202"),
    answer::<super::pairing::Devices>("get", "/api/v1/paired-devices", "200"),
    answer::<super::pairing::Paired>("post", "/api/v1/paired-devices", "201"),
    answer::<super::pairing::Revoked>("delete", "/api/v1/paired-devices/{id}", "200"),
    answer::<super::checkins::CheckinAnswer>("post", "/api/v1/checkins", "200"),
    answer::<super::checkins::ScanPage>("get", "/api/v1/checkins", "200"),
    answer::<super::checkins::CheckinAnswer>("post", "/api/v1/checkins/{id}/undo", "200"),
    answer::<super::lookup::Found>("get", "/api/v1/tickets", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/walkups", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/scholarships/claims", "200"),
    answer::<super::sales::OrderAnswer>("get", "/api/v1/orders/{id}", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/orders/{id}/void", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/orders/{id}/refund", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/drops/{id}/sales", "200"),
    answer::<super::sales::OrderAnswer>("post", "/api/v1/holds/{id}/checkout", "200"),
    answer::<super::tus::OpenUploads>("get", "/api/v1/open-uploads", "200"),
    answer::<super::tus::Cleared>("delete", "/api/v1/open-uploads", "200"),
    answer::<super::sync::StatusAnswer>("get", "/api/v1/sync", "200"),
    answer::<super::sync::StatusAnswer>("post", "/api/v1/sync/now", "202"),
    answer::<super::sync::StatusAnswer>("put", "/api/v1/sync/manifest-freeze", "200"),
];

fn generator(contract: Contract) -> SchemaGenerator {
    SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
        s.contract = contract;
    }))
}

/// The checked-in document with every answer's and request's schema
/// derived from its type (what `venuebox openapi` prints and the test
/// compares).
pub fn document() -> Value {
    let mut doc: Value = serde_json::from_str(super::ops::OPENAPI).expect("the document is JSON");
    // Answers: what the box sends (a field skipped when empty is not required).
    let mut answers = generator(Contract::Serialize);
    for a in ANSWERS {
        let schema = (a.schema)(&mut answers);
        let content = &mut doc["paths"][a.path][a.method]["responses"][a.status]["content"];
        assert!(
            content.is_object(),
            "{} {} has no {} answer in the document",
            a.method,
            a.path,
            a.status
        );
        content["application/json"]["schema"] = schema.to_value();
    }
    let answer_defs = answers.take_definitions(true);
    // Requests: what the box accepts (a field with a default is not
    // required). A type that reads differently from how it is written
    // (`DropSpec`: defaults) gets its request schema under `NameInput`.
    let mut requests = generator(Contract::Deserialize);
    let mut bodies: Vec<Value> =
        REQUESTS.iter().map(|r| (r.schema)(&mut requests).to_value()).collect();
    let mut request_defs = requests.take_definitions(true);
    let renamed: Vec<(String, String)> = request_defs
        .iter()
        .filter(|(n, s)| answer_defs.get(*n).is_some_and(|a| a != *s))
        .map(|(n, _)| (n.clone(), format!("{n}Input")))
        .collect();
    for (old, new) in &renamed {
        let schema = request_defs.remove(old).expect("listed");
        request_defs.insert(new.clone(), schema);
    }
    for v in bodies.iter_mut().chain(request_defs.values_mut()) {
        rename_refs(v, &renamed);
    }
    for (r, schema) in REQUESTS.iter().zip(bodies) {
        let body = &mut doc["paths"][r.path][r.method]["requestBody"];
        assert!(body.is_object(), "{} {} has no request body in the document", r.method, r.path);
        body["content"]["application/json"]["schema"] = schema;
    }
    let schemas = doc["components"]["schemas"].as_object_mut().expect("components.schemas");
    for (name, schema) in answer_defs.into_iter().chain(request_defs) {
        schemas.insert(name, schema);
    }
    // A hand-written schema nothing refers to any more goes.
    loop {
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object_mut().expect("components.schemas");
        let unused: Vec<String> = schemas
            .keys()
            .filter(|n| !text.contains(&format!("\"#/components/schemas/{n}\"")))
            .cloned()
            .collect();
        if unused.is_empty() {
            return doc;
        }
        for n in unused {
            schemas.remove(&n);
        }
    }
}

/// Points every `$ref` to a renamed definition at its new name.
fn rename_refs(v: &mut Value, renamed: &[(String, String)]) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                if k == "$ref" {
                    if let Some(target) =
                        field.as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        if let Some((_, new)) = renamed.iter().find(|(old, _)| old == target) {
                            *field = Value::String(format!("#/components/schemas/{new}"));
                        }
                    }
                } else {
                    rename_refs(field, renamed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, renamed)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written document is the derived one: run
    /// `scripts/openapi-schemas` after changing an answer type.
    #[test]
    fn the_documents_answer_schemas_are_derived_from_the_types() {
        let written: Value = serde_json::from_str(super::super::ops::OPENAPI).unwrap();
        let derived = document();
        let mut stale = Vec::new();
        for (name, schema) in derived["components"]["schemas"].as_object().unwrap() {
            if written["components"]["schemas"][name] != *schema {
                stale.push(format!("components.schemas.{name}"));
            }
        }
        for a in ANSWERS {
            let at = |d: &Value| d["paths"][a.path][a.method]["responses"][a.status].clone();
            if at(&written) != at(&derived) {
                stale.push(format!("{} {} {}", a.method, a.path, a.status));
            }
        }
        for r in REQUESTS {
            let at = |d: &Value| d["paths"][r.path][r.method]["requestBody"].clone();
            if at(&written) != at(&derived) {
                stale.push(format!("{} {} request body", r.method, r.path));
            }
        }
        assert!(
            stale.is_empty(),
            "src/api/openapi.json is stale (run scripts/openapi-schemas): {stale:#?}"
        );
    }

    /// Every JSON success answer the document lists refers to a schema
    /// with fields (no bare `{"type": "object"}` that checks nothing).
    #[test]
    fn every_json_success_answer_refers_to_its_schema() {
        let doc = document();
        let mut bare = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                    continue;
                };
                for (status, r) in responses {
                    let Some(schema) = r.pointer("/content/application~1json/schema") else {
                        continue;
                    };
                    if !status.starts_with('2') || path == "/api/v1/openapi.json" {
                        continue;
                    }
                    if schema.get("$ref").is_none() {
                        bare.push(format!("{method} {path} {status}: {schema}"));
                    }
                }
            }
        }
        assert!(bare.is_empty(), "answers without a schema of their type: {bare:#?}");
    }

    /// Every JSON request body the document lists is derived from the type
    /// its handler reads (none is hand-written, so none can drift).
    #[test]
    fn every_json_request_body_is_derived_from_its_type() {
        let doc: Value = serde_json::from_str(super::super::ops::OPENAPI).unwrap();
        let mut unlisted = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if op.pointer("/requestBody/content/application~1json").is_none() {
                    continue;
                }
                if !REQUESTS.iter().any(|r| r.path == path && r.method == method) {
                    unlisted.push(format!("{method} {path}"));
                }
            }
        }
        assert!(unlisted.is_empty(), "request bodies not in REQUESTS: {unlisted:#?}");
    }
}
