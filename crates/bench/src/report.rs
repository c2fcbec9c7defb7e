//! What a benchmark run found: one [`Row`] per figure, the machine it ran on, printed as a
//! table and written as JSON. A row that was not measured says why; it never holds a number.

use serde::Serialize;
use serde_json::Value;

/// Whether a figure meets the goal the benchmark issue set (reported, never asserted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The goal is met.
    Met,
    /// The goal is missed; docs/benchmarks.md says where the time goes.
    Missed,
    /// No goal for this figure.
    NoGoal,
    /// The benchmark did not run; the text says why.
    NotMeasured(String),
    /// The benchmark ran and failed; the text says how.
    Failed(String),
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// `full-sync`, `delta`, `api-listing`, `writeback`, …
    pub benchmark: String,
    /// What was measured: directory, size, database, schedule.
    pub case: String,
    /// The figure as a person reads it (empty when not measured).
    pub result: String,
    /// The goal, as the issue words it (empty when none).
    pub goal: String,
    pub verdict: Verdict,
    /// The raw numbers (seconds, bytes, counts) for tools.
    pub values: Value,
}

impl Row {
    pub fn new(benchmark: &str, case: impl Into<String>) -> Row {
        Row {
            benchmark: benchmark.into(),
            case: case.into(),
            result: String::new(),
            goal: String::new(),
            verdict: Verdict::NoGoal,
            values: Value::Null,
        }
    }

    pub fn not_measured(benchmark: &str, case: impl Into<String>, why: impl Into<String>) -> Row {
        Row {
            verdict: Verdict::NotMeasured(why.into()),
            ..Row::new(benchmark, case)
        }
    }

    pub fn failed(benchmark: &str, case: impl Into<String>, error: &anyhow::Error) -> Row {
        Row {
            verdict: Verdict::Failed(format!("{error:#}")),
            ..Row::new(benchmark, case)
        }
    }

    /// Sets the goal and whether `met`.
    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.verdict = if met { Verdict::Met } else { Verdict::Missed };
        self
    }
}

/// The machine and software a run used.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: u64,
    pub os: String,
    pub samba: String,
    pub slapd: String,
    pub postgres: String,
    pub commit: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub started_at: String,
    pub wall_secs: f64,
    pub machine: Machine,
    pub rows: Vec<Row>,
}

impl Report {
    /// The table printed at the end of a run (markdown, so it can be pasted into the docs).
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("| benchmark | case | result | goal | verdict |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            let verdict = match &r.verdict {
                Verdict::Met => "met".to_string(),
                Verdict::Missed => "MISSED".to_string(),
                Verdict::NoGoal => "—".to_string(),
                Verdict::NotMeasured(why) => format!("not measured yet: {why}"),
                Verdict::Failed(e) => format!("FAILED: {e}"),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.benchmark,
                r.case,
                cell(&r.result),
                cell(&r.goal),
                verdict.replace('|', "/")
            ));
        }
        out
    }
}

fn cell(s: &str) -> String {
    if s.is_empty() {
        "—".into()
    } else {
        s.replace('|', "/")
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `q` quantile (0..=1) of `xs` by nearest rank; `xs` need not be sorted.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), 50.0);
        assert_eq!(quantile(&xs, 0.95), 95.0);
        assert_eq!(quantile(&xs, 0.99), 99.0);
        assert_eq!(quantile(&[3.0], 0.95), 3.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn unmeasured_rows_show_why_and_no_number() {
        let r = Report {
            started_at: String::new(),
            wall_secs: 0.0,
            machine: Machine {
                cores: 2,
                cpu: String::new(),
                memory_gib: 0,
                os: String::new(),
                samba: String::new(),
                slapd: String::new(),
                postgres: String::new(),
                commit: String::new(),
            },
            rows: vec![Row::not_measured("writeback", "SSPR resets", "no API yet")],
        };
        let t = r.table();
        assert!(t.contains("| writeback | SSPR resets | — | — | not measured yet: no API yet |"));
    }
}
