//! `-o json|yaml`: objects as `kubectl get -o` prints them (a list as a `v1` `List`).

use std::io::{self, Write};

use serde::Serialize;

use crate::cli::Format;

/// Prints `value` in `format`.
pub fn print(out: &mut dyn Write, value: &impl Serialize, format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
            writeln!(out)
        }
        Format::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(io::Error::other)?;
            out.write_all(text.as_bytes())
        }
    }
}

/// Items as a `v1` `List`, as kubectl prints several objects.
pub fn print_list(out: &mut dyn Write, items: &[impl Serialize], format: Format) -> io::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a, T> {
        api_version: &'static str,
        kind: &'static str,
        items: &'a [T],
    }
    print(
        out,
        &List {
            api_version: "v1",
            kind: "List",
            items,
        },
        format,
    )
}
