//! The event schemas, with format validation on (`date-time`, `uri`, ...).

use std::path::Path;

/// `docs/event.schema.json`: the pushgate format.
pub fn event_schema() -> jsonschema::Validator {
    schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json"))
}

/// GitHub's push event (`tests/data/github-push-event.schema.json`).
pub fn github_schema() -> jsonschema::Validator {
    schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/github-push-event.schema.json"))
}

/// A validator for the schema at `path`, with format validation on.
fn schema(path: &Path) -> jsonschema::Validator {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Fails the test with every violation when `instance` does not validate.
#[track_caller]
pub fn assert_valid(validator: &jsonschema::Validator, instance: &serde_json::Value) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "does not validate:\n{}\n--- instance\n{instance:#}", errors.join("\n"));
}

/// Fails the test with every violation when `event` does not validate against
/// `docs/event.schema.json`.
#[track_caller]
pub fn assert_valid_event(event: &serde_json::Value) {
    assert_valid(&event_schema(), event);
}
