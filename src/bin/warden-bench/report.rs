//! Figures, percentiles, and the one side-by-side table (Markdown and JSON).
//!
//! Invariant: a figure measured for one target but not the other still gets
//! its row (the missing cell says so); failures and status counts are rows
//! like any other, never dropped.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::server::Target;

/// Which direction is better for a figure (decides the ratio).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Throughput-like: ratio = Warden / Node (and floor / Warden).
    Higher,
    /// Latency-, memory- or CPU-like: ratio = Node / Warden (and Warden / floor).
    Lower,
    /// Counts and text: no ratio.
    Neither,
}

/// A measured value.
#[derive(Clone, Debug)]
pub enum Val {
    /// A number shown with a fixed number of decimals.
    Num(f64, usize),
    /// Anything else (status counts, yes/no, errors).
    Text(String),
}

/// One named figure of one run.
#[derive(Clone, Debug)]
pub struct Fig {
    name: String,
    val: Val,
    better: Better,
}

/// The figures of one scenario run against one target.
#[derive(Default, Debug)]
pub struct Figs(Vec<Fig>);

impl Figs {
    /// Adds a number.
    pub fn num(&mut self, name: &str, v: f64, decimals: usize, better: Better) {
        self.0.push(Fig {
            name: name.to_owned(),
            val: Val::Num(v, decimals),
            better,
        });
    }

    /// Adds a text figure.
    pub fn text(&mut self, name: &str, v: impl Into<String>) {
        self.0.push(Fig {
            name: name.to_owned(),
            val: Val::Text(v.into()),
            better: Better::Neither,
        });
    }
}

struct Row {
    scenario: String,
    figure: String,
    better: Better,
    vals: [Option<Val>; 3],
}

/// Every row of a benchmark run.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

fn slot(t: Target) -> usize {
    match t {
        Target::Warden => 0,
        Target::Node => 1,
        Target::Floor => 2,
    }
}

impl Report {
    /// Records `figs` of `scenario` for `target`.
    pub fn add(&mut self, scenario: &str, target: Target, figs: Figs) {
        for f in figs.0 {
            let pos = self
                .rows
                .iter()
                .position(|r| r.scenario == scenario && r.figure == f.name);
            let row = match pos {
                Some(i) => &mut self.rows[i],
                None => {
                    self.rows.push(Row {
                        scenario: scenario.to_owned(),
                        figure: f.name.clone(),
                        better: f.better,
                        vals: [None, None, None],
                    });
                    self.rows.last_mut().expect("a row was just pushed")
                }
            };
            row.vals[slot(target)] = Some(f.val);
        }
    }

    /// The Markdown table: scenario, figure, Warden, Node, ratio, and the
    /// floor's columns when it ran.
    pub fn markdown(&self) -> String {
        let floor = self.rows.iter().any(|r| r.vals[2].is_some());
        let mut out = String::from("| scenario | figure | Warden | Node | Warden advantage |");
        out.push_str(if floor {
            " floor | × floor |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
        } else {
            "\n| --- | --- | ---: | ---: | ---: |\n"
        });
        let mut last = "";
        for r in &self.rows {
            let scen = if r.scenario == last { "" } else { &r.scenario };
            last = &r.scenario;
            let _ = write!(
                out,
                "| {scen} | {} | {} | {} | {} |",
                r.figure,
                cell(&r.vals[0]),
                cell(&r.vals[1]),
                ratio(r.better, &r.vals[0], &r.vals[1])
            );
            if floor {
                // Against the floor the question is the reverse: how many times its cost.
                let _ = write!(
                    out,
                    " {} | {} |",
                    cell(&r.vals[2]),
                    ratio(r.better, &r.vals[2], &r.vals[0])
                );
            }
            out.push('\n');
        }
        out
    }

    /// `{"Warden": {"scenario / figure": value}, "Node": {…}, "floor": {…}}`.
    pub fn json(&self) -> Value {
        let mut by_target = [Map::new(), Map::new(), Map::new()];
        for r in &self.rows {
            for (i, v) in r.vals.iter().enumerate() {
                let value = match v {
                    Some(Val::Num(n, _)) => json!(n),
                    Some(Val::Text(t)) => json!(t),
                    None => continue,
                };
                by_target[i].insert(format!("{} / {}", r.scenario, r.figure), value);
            }
        }
        let [w, n, f] = by_target;
        json!({"Warden": w, "Node": n, "floor": f})
    }
}

fn cell(v: &Option<Val>) -> String {
    match v {
        None => "—".to_owned(),
        Some(Val::Num(n, _)) if !n.is_finite() => "n/a".to_owned(),
        Some(Val::Num(n, d)) => format!("{n:.d$}", d = *d),
        Some(Val::Text(t)) => t.replace('|', "\\|"),
    }
}

/// How many times better `w` is than `n` (blank when either is not a number).
fn ratio(better: Better, w: &Option<Val>, n: &Option<Val>) -> String {
    let (Some(Val::Num(w, _)), Some(Val::Num(n, _))) = (w, n) else {
        return String::new();
    };
    let x = match better {
        Better::Higher if *n > 0.0 => w / n,
        Better::Lower if *w > 0.0 => n / w,
        _ => return String::new(),
    };
    if x >= 10.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.2}×")
    }
}

/// The `p`-th percentile (nearest rank) of sorted microseconds, in ms.
pub fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// `200×5000, 429×3` (status → count), sorted by status.
pub fn status_counts(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_follows_direction_and_rows_merge() {
        let mut r = Report::default();
        let mut w = Figs::default();
        w.num("rate", 100.0, 0, Better::Higher);
        w.num("p99 ms", 2.0, 1, Better::Lower);
        r.add("flood", Target::Warden, w);
        let mut n = Figs::default();
        n.num("rate", 10.0, 0, Better::Higher);
        n.num("p99 ms", 8.0, 1, Better::Lower);
        n.text("statuses", "200×3");
        r.add("flood", Target::Node, n);
        let md = r.markdown();
        assert!(md.contains("| flood | rate | 100 | 10 | 10× |"), "{md}");
        assert!(md.contains("|  | p99 ms | 2.0 | 8.0 | 4.00× |"), "{md}");
        assert!(md.contains("|  | statuses | — | 200×3 |  |"), "{md}");
        assert_eq!(r.json()["Node"]["flood / rate"], 10.0);
    }

    #[test]
    fn floor_columns_appear_when_the_floor_ran_and_read_as_times_its_cost() {
        let mut r = Report::default();
        let mut w = Figs::default();
        w.num("p99 ms", 90.0, 1, Better::Lower);
        w.num("deliveries/s", 400.0, 0, Better::Higher);
        r.add("fan-out", Target::Warden, w);
        let mut f = Figs::default();
        f.num("p99 ms", 60.0, 1, Better::Lower);
        f.num("deliveries/s", 500.0, 0, Better::Higher);
        r.add("fan-out", Target::Floor, f);
        let mut n = Figs::default();
        n.num("rate", 10.0, 0, Better::Higher);
        r.add("flood", Target::Node, n);
        let md = r.markdown();
        assert!(md.starts_with("| scenario | figure | Warden | Node | Warden advantage | floor | × floor |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"), "{md}");
        assert!(
            md.contains("| fan-out | p99 ms | 90.0 | — |  | 60.0 | 1.50× |"),
            "{md}"
        );
        assert!(
            md.contains("|  | deliveries/s | 400 | — |  | 500 | 1.25× |"),
            "{md}"
        );
        assert!(md.contains("| flood | rate | — | 10 |  | — |  |"), "{md}");
        assert_eq!(r.json()["floor"]["fan-out / p99 ms"], 60.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(pct_ms(&v, 50.0), 50.0);
        assert_eq!(pct_ms(&v, 99.0), 99.0);
        assert_eq!(pct_ms(&v, 100.0), 100.0);
    }
}
