//! `eventflow types list|show|apply`: the schema registry. `apply` reads the declarations a team
//! keeps next to its code (JSON or YAML) and PUTs each one, so it can run on every deploy: an
//! unchanged schema makes no new version.

use std::io::Read;

use anyhow::{Context, bail};
use eventflow::api::path_segment;
use serde_json::Value;

use super::Remote;
use crate::cli::TypesAction;

/// `eventflow types …`
pub async fn types(remote: &Remote, action: TypesAction) -> anyhow::Result<()> {
    match action {
        TypesAction::List => {
            let columns = [
                ("TYPE", "/type"),
                ("VERSION", "/version"),
                ("DEPRECATED", "/deprecated"),
                ("DESCRIPTION", "/description"),
            ];
            remote
                .print_page("api/v1/event-types", &[], "event_types", &columns)
                .await?;
        }
        TypesAction::Show { event_type } => {
            let path = format!("api/v1/event-types/{}", path_segment(&event_type));
            let found = remote.call(reqwest::Method::GET, &path, &[], None).await?;
            remote.print(&found, |t| {
                serde_json::to_string_pretty(t).unwrap_or_default() + "\n"
            });
        }
        TypesAction::Apply { file } => {
            let declarations = declarations(&read(&file)?)?;
            let mut applied = Vec::new();
            for mut declaration in declarations {
                let Some(Value::String(name)) = declaration
                    .as_object_mut()
                    .and_then(|object| object.remove("type"))
                else {
                    bail!("every declaration needs a \"type\": {declaration}");
                };
                let path = format!("api/v1/event-types/{}", path_segment(&name));
                let saved = remote
                    .call(reqwest::Method::PUT, &path, &[], Some(&declaration))
                    .await
                    .with_context(|| format!("applying {name}"))?;
                applied.push(saved);
            }
            remote.print(&Value::from(applied), |applied| {
                let lines: Vec<String> = applied
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}: version {}\n",
                            t["type"].as_str().unwrap_or("?"),
                            t["version"]
                        )
                    })
                    .collect();
                lines.concat()
            });
        }
    }
    Ok(())
}

/// The file's text; `-` reads standard input.
fn read(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))
}

/// The declarations in `text` (JSON, or YAML, which JSON also is): one, a list, or
/// `{event_types: [...]}`.
fn declarations(text: &str) -> anyhow::Result<Vec<Value>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => serde_yaml_ng::from_str(text).context("the file is neither JSON nor YAML")?,
    };
    Ok(match value {
        Value::Array(items) => items,
        Value::Object(mut object) if object.contains_key("event_types") => {
            match object.remove("event_types") {
                Some(Value::Array(items)) => items,
                _ => bail!("event_types must be a list of declarations"),
            }
        }
        single @ Value::Object(_) => vec![single],
        _ => bail!("expected a declaration, a list of them, or {{event_types: [...]}}"),
    })
}
