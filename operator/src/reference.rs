//! A Markdown reference of every DebugSession field, generated from the CRD's OpenAPI schema
//! (so it cannot drift from the API: a test compares it with `docs/debugsession-reference.md`).

use serde_json::Value;

/// Renders the reference of the CRD's first version.
pub fn markdown(crd: &Value) -> String {
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut out = format!(
        "# DebugSession reference\n\n`{}/{}`, kind `{}`, namespaced. Generated from the CRD by \
         `make crds`; do not edit.\n\n{}\n",
        crd["spec"]["group"].as_str().unwrap_or_default(),
        version["name"].as_str().unwrap_or_default(),
        crd["spec"]["names"]["kind"].as_str().unwrap_or_default(),
        schema["description"].as_str().unwrap_or_default()
    );
    for section in ["spec", "status"] {
        out.push_str(&format!(
            "\n## {section}\n\n| field | type | default | constraints | description |\n|---|---|---|---|---|\n"
        ));
        walk(&schema["properties"][section], section, &mut out);
    }
    let rules: Vec<String> = collect_rules(schema, "");
    if !rules.is_empty() {
        out.push_str("\n## Validation rules\n\nThe API server refuses a DebugSession that breaks one of these, with this message:\n\n");
        for rule in rules {
            out.push_str(&format!("- {rule}\n"));
        }
    }
    out
}

fn walk(node: &Value, path: &str, out: &mut String) {
    let Some(properties) = node["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, child) in properties {
        let field = format!("{path}.{name}");
        let mut constraints = Vec::new();
        if required.contains(&name.as_str()) {
            constraints.push("required".to_string());
        }
        for (key, label) in [
            ("minimum", "min"),
            ("maximum", "max"),
            ("minItems", "min items"),
            ("maxLength", "max length"),
            ("pattern", "pattern"),
        ] {
            if let Some(value) = child.get(key) {
                constraints.push(format!("{label} `{}`", plain(value)));
            }
        }
        let enum_values = child.get("enum").or_else(|| child["items"].get("enum"));
        if let Some(values) = enum_values.and_then(Value::as_array) {
            let names: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
            constraints.push(format!("one of {}", names.join(", ")));
        }
        if child.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
            constraints.push("no duplicates".into());
        }
        let kind = match child["type"].as_str() {
            Some("array") => format!("[]{}", child["items"]["type"].as_str().unwrap_or("object")),
            Some(t) => t.to_string(),
            None => "object".to_string(),
        };
        let default = child
            .get("default")
            .map(|d| format!("`{}`", plain(d)))
            .unwrap_or_default();
        let description = child["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let constraints = constraints.join("; ").replace('|', "\\|");
        out.push_str(&format!(
            "| `{field}` | {kind} | {default} | {constraints} | {description} |\n"
        ));
        // Kubernetes' own types (conditions, label selectors) are documented upstream.
        if !matches!(name.as_str(), "conditions" | "selector") {
            walk(child, &field, out);
            walk(&child["items"], &format!("{field}[]"), out);
        }
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| format!("{f}")),
        other => other.to_string(),
    }
}

fn collect_rules(node: &Value, path: &str) -> Vec<String> {
    let mut rules: Vec<String> = node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            format!(
                "on {}: `{}` — {}",
                if path.is_empty() {
                    "the object".to_string()
                } else {
                    format!("`{}`", path.trim_start_matches('.'))
                },
                rule["rule"].as_str().unwrap_or_default(),
                rule["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if let Some(properties) = node["properties"].as_object() {
        for (name, child) in properties {
            if name != "metadata" || path.is_empty() {
                rules.extend(collect_rules(child, &format!("{path}.{name}")));
            }
        }
    }
    rules
}
