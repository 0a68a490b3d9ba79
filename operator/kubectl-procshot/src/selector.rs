//! `-l SELECTOR` in kubectl's syntax (`app=api`, `tier!=db`, `env in (prod,canary)`,
//! `env notin (dev)`, `canary`, `!canary`), parsed into the `LabelSelector` a
//! DebugSession's `spec.target.selector` holds. kubectl's `>`/`<` comparisons have no
//! `LabelSelector` form and are refused.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// A selector that cannot be parsed, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "label selector {given:?}: {detail} (write it as kubectl takes it: app=api, tier!=db, \
     env in (prod,canary), !canary, comma-separated)"
)]
pub struct SelectorError {
    given: String,
    detail: String,
}

/// Parses a kubectl label selector.
pub fn parse(given: &str) -> Result<LabelSelector, SelectorError> {
    let error = |detail: String| SelectorError {
        given: given.to_string(),
        detail,
    };
    let mut labels = BTreeMap::new();
    let mut expressions = Vec::new();
    for requirement in split_requirements(given).map_err(error)? {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            return Err(error("it has an empty requirement".into()));
        }
        match parse_requirement(requirement).map_err(error)? {
            Parsed::Equals(key, value) => {
                if labels.insert(key.clone(), value).is_some() {
                    return Err(error(format!("{key} is given twice")));
                }
            }
            Parsed::Expression(expression) => expressions.push(expression),
        }
    }
    if labels.is_empty() && expressions.is_empty() {
        return Err(error("it selects every pod".into()));
    }
    Ok(LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

enum Parsed {
    Equals(String, String),
    Expression(LabelSelectorRequirement),
}

/// Splits at the commas outside parentheses.
fn split_requirements(given: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in given.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("a ')' has no '('")?,
            ',' if depth == 0 => {
                parts.push(&given[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a '(' is not closed".into());
    }
    parts.push(&given[start..]);
    Ok(parts)
}

fn parse_requirement(text: &str) -> Result<Parsed, String> {
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Parsed::Expression(requirement(
            key.trim(),
            "DoesNotExist",
            Vec::new(),
        )?));
    }
    if text.contains('>') || text.contains('<') {
        return Err(format!(
            "{text:?}: > and < have no DebugSession form: use =, !=, in, notin"
        ));
    }
    if let Some((key, value)) = text.split_once("!=") {
        let value = label_value(value.trim())?;
        return Ok(Parsed::Expression(requirement(
            key.trim(),
            "NotIn",
            vec![value],
        )?));
    }
    if let Some((key, value)) = text.split_once('=') {
        let value = value.strip_prefix('=').unwrap_or(value);
        return Ok(Parsed::Equals(
            label_key(key.trim())?,
            label_value(value.trim())?,
        ));
    }
    let words: Vec<&str> = text.splitn(2, char::is_whitespace).collect();
    match words.as_slice() {
        [key] => Ok(Parsed::Expression(requirement(key, "Exists", Vec::new())?)),
        [key, rest] => {
            let rest = rest.trim_start();
            let (operator, set) = if let Some(set) = rest.strip_prefix("notin") {
                ("NotIn", set)
            } else if let Some(set) = rest.strip_prefix("in") {
                ("In", set)
            } else {
                return Err(format!("{text:?}: expected in, notin, = or !="));
            };
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| {
                    format!(
                        "{text:?}: the values go in parentheses: {key} {} (a,b)",
                        operator.to_lowercase()
                    )
                })?;
            let values = inner
                .split(',')
                .map(|v| label_value(v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            if values.iter().all(String::is_empty) {
                return Err(format!("{text:?}: the set of values is empty"));
            }
            Ok(Parsed::Expression(requirement(key, operator, values)?))
        }
        _ => Err(format!("{text:?} is not a requirement")),
    }
}

fn requirement(
    key: &str,
    operator: &str,
    values: Vec<String>,
) -> Result<LabelSelectorRequirement, String> {
    Ok(LabelSelectorRequirement {
        key: label_key(key)?,
        operator: operator.to_string(),
        values: (!values.is_empty()).then_some(values),
    })
}

/// A label key: `[prefix/]name`, letters, digits, `-`, `_`, `.`.
fn label_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.split('/').count() <= 2
        && key
            .split('/')
            .all(|part| !part.is_empty() && part.chars().all(is_label_char));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("{key:?} is not a label key"))
    }
}

/// A label value: empty, or up to 63 letters, digits, `-`, `_`, `.`.
fn label_value(value: &str) -> Result<String, String> {
    if value.len() <= 63 && value.chars().all(is_label_char) {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The selector in kubectl's syntax again (kube's rendering), for `labelSelector=` queries
/// and messages. One with an operator Kubernetes does not know renders as text the API
/// server refuses, never as an empty selector that would match every pod.
pub fn render(selector: &LabelSelector) -> String {
    match kube::core::Selector::try_from(selector.clone()) {
        Ok(selector) => selector.to_string(),
        Err(e) => format!("<unusable selector: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_selectors_become_label_selectors() {
        let selector = parse(
            "app=api, tier!=db,env in (prod, canary),track notin (x),canary,!legacy,a.b/c==d",
        )
        .unwrap();
        let labels = selector.match_labels.clone().unwrap();
        assert_eq!(labels["app"], "api");
        assert_eq!(labels["a.b/c"], "d");
        let expressions: Vec<(String, String, Vec<String>)> = selector
            .match_expressions
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.operator, e.values.unwrap_or_default()))
            .collect();
        let s = |v: &str| v.to_string();
        assert_eq!(
            expressions,
            [
                (s("tier"), s("NotIn"), vec![s("db")]),
                (s("env"), s("In"), vec![s("prod"), s("canary")]),
                (s("track"), s("NotIn"), vec![s("x")]),
                (s("canary"), s("Exists"), vec![]),
                (s("legacy"), s("DoesNotExist"), vec![]),
            ]
        );
        assert_eq!(
            render(&selector),
            "a.b/c=d,app=api,tier notin (db),env in (canary,prod),track notin (x),canary,!legacy"
        );
        let again = parse(&render(&selector)).unwrap();
        assert_eq!(render(&again), render(&selector));
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for (given, detail) in [
            ("", "empty requirement"),
            ("app=api,", "empty requirement"),
            ("env in (a", "'(' is not closed"),
            ("env in a,b", "parentheses"),
            ("replicas>3", "> and <"),
            ("app=a b", "not a label value"),
            ("a=1,a=2", "given twice"),
            ("env in ()", "empty"),
        ] {
            let e = parse(given).unwrap_err().to_string();
            assert!(e.contains(detail), "{given:?}: {e}");
        }
    }
}
