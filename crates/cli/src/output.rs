//! Printing: the API's JSON as-is for scripts, aligned columns or `field: value` lines for people.

use clap::ValueEnum;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How a command prints data (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns (or `field: value` lines for a single object).
    Table,
    /// The API's JSON document, pretty-printed.
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
}

impl Output {
    pub fn is_json(self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints `value` pretty in JSON mode; otherwise reads it as `T` and prints what `render` makes.
    pub fn data<T: DeserializeOwned>(
        self,
        value: Value,
        render: impl FnOnce(T) -> String,
    ) -> anyhow::Result<()> {
        if self.is_json() {
            print_json(&value);
        } else {
            let typed = decode::<T>(value)?;
            print_text(&render(typed));
        }
        Ok(())
    }

    /// A confirmation with no data behind it (e.g. after a delete): shown to people, not to scripts.
    pub fn done(self, message: &str) {
        if !self.is_json() {
            println!("{message}");
        }
    }
}

/// Reads an API answer as a proto type; a mismatch means client and cloud disagree on the API.
pub fn decode<T: DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value).map_err(|e| {
        anyhow::anyhow!(
            "the cloud's answer does not have the shape this dirbridge expects ({e}); are the CLI and the cloud the same version? `--output json` shows the raw answer"
        )
    })
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn print_text(text: &str) {
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// Columns aligned on the widest cell, two spaces apart, header in capitals.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    empty: &'static str,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
            empty: "Nothing to show.",
        }
    }

    /// What to print instead of a header with no rows.
    pub fn empty(mut self, message: &'static str) -> Self {
        self.empty = message;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return format!("{}\n", self.empty);
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_uppercase()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                out.push_str(cell);
                if i < last {
                    out.push_str(&" ".repeat(w - cell.chars().count() + 2));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// `label: value` lines with the values aligned, for one object.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&format!(
            "{k}:{}{v}\n",
            " ".repeat(width - k.chars().count() + 1)
        ));
    }
    out
}

/// An optional value for a cell: empty cells print as `-`.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The API's spelling of a proto enum value, e.g. `onPremises`.
pub fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(&["upn", "name"]);
        t.row(vec!["ann@contoso.com".into(), "Ann".into()]);
        t.row(vec!["bo@x".into(), "Bo Ek".into()]);
        assert_eq!(
            t.render(),
            "UPN              NAME\nann@contoso.com  Ann\nbo@x             Bo Ek\n"
        );
    }

    #[test]
    fn empty_table_says_so() {
        assert_eq!(
            Table::new(&["a"]).empty("No users.").render(),
            "No users.\n"
        );
    }

    #[test]
    fn fields_align_values() {
        assert_eq!(
            fields(&[("Id", "1".into()), ("Name", "x".into())]),
            "Id:   1\nName: x\n"
        );
    }

    #[test]
    fn wire_uses_api_spelling() {
        assert_eq!(wire(&proto::Source::OnPremises), "onPremises");
        assert_eq!(wire(&proto::ErrorCode::BadRequest), "Request_BadRequest");
    }
}
