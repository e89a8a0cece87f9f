//! The JSON Schema of the scenario format, for editors (the
//! `# yaml-language-server: $schema=scenario.schema.json` modeline) and for
//! validating files outside dsrlab.
//!
//! It is derived from [`model::Scenario`](super::model::Scenario) by
//! schemars, so it cannot drift from what the loader reads; a test checks
//! that the shipped `scenarios/scenario.schema.json` equals
//! [`schema_json`]. Rules the types cannot express (exactly one of
//! `builtin`/`object`, paths that exist, map key sizes ...) are the
//! loader's; the schema adds only the ones JSON Schema states plainly.

use schemars::{Schema, SchemaGenerator};
use serde_json::{Value, json};

use super::model::{Scenario, VERSION};

/// The schema's `$id`: a name, not a place to fetch it from.
pub const ID: &str = "urn:dsrlab:scenario:v1";

/// Where the schema ships, relative to the repository root.
pub const SHIPPED_PATH: &str = "scenarios/scenario.schema.json";

/// The JSON Schema of [`Scenario`].
pub fn schema() -> Schema {
    let mut schema = SchemaGenerator::default().into_root_schema_for::<Scenario>();
    schema.insert("$id".into(), json!(ID));
    schema.insert(
        "title".into(),
        json!(format!("dsrlab scenario, format version {VERSION}")),
    );
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        // The type is u32 so that other versions parse and are refused with
        // a clear message; an editor should flag them at once.
        if let Some(Value::Object(version)) = props.get_mut("version") {
            version.insert("const".into(), json!(VERSION));
        }
        // The loader refuses a scenario with nothing to run.
        for key in ["programs", "traffic"] {
            if let Some(Value::Object(list)) = props.get_mut(key) {
                list.insert("minItems".into(), json!(1));
            }
        }
    }
    schema
}

/// [`schema`] as pretty-printed JSON with a final newline: the content of
/// `scenarios/scenario.schema.json`.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&schema())
        .unwrap_or_else(|e| unreachable!("a schema is plain JSON: {e}"));
    text.push('\n');
    text
}
