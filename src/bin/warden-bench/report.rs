//! Figures, percentiles, and the one side-by-side table (Markdown and JSON).
//!
//! Invariant: a figure measured for one target but not the other still gets
//! its row (the missing cell says so); failures and status counts are rows
//! like any other, never dropped.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::figure::{Figure, Shape};
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
    /// A number, shown with its figure's decimals.
    Num(f64),
    /// Anything else (status counts, yes/no, errors).
    Text(String),
}

/// One figure of one run.
#[derive(Clone, Debug)]
pub struct Fig {
    key: Figure,
    val: Val,
}

/// The figures of one scenario run against one target.
#[derive(Default, Debug)]
pub struct Figs(Vec<Fig>);

impl Figs {
    /// Adds a number.
    pub fn num(&mut self, key: Figure, v: f64) {
        debug_assert!(
            matches!(key.shape(), Shape::Num { .. }),
            "{key} is a text figure"
        );
        self.0.push(Fig {
            key,
            val: Val::Num(v),
        });
    }

    /// The number recorded under `key`, if any.
    pub fn get(&self, key: Figure) -> Option<f64> {
        self.0.iter().find_map(|f| match f.val {
            Val::Num(v) if f.key == key => Some(v),
            _ => None,
        })
    }

    /// Adds a text figure.
    pub fn text(&mut self, key: Figure, v: impl Into<String>) {
        debug_assert_eq!(key.shape(), Shape::Text, "{key} is a number");
        self.0.push(Fig {
            key,
            val: Val::Text(v.into()),
        });
    }
}

struct Row {
    scenario: String,
    figure: Figure,
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
                .position(|r| r.scenario == scenario && r.figure == f.key);
            let row = match pos {
                Some(i) => &mut self.rows[i],
                None => {
                    self.rows.push(Row {
                        scenario: scenario.to_owned(),
                        figure: f.key,
                        vals: [None, None, None],
                    });
                    self.rows.last_mut().expect("a row was just pushed")
                }
            };
            row.vals[slot(target)] = Some(f.val);
        }
    }

    /// The number `target` gave for `key` in `scenario`, if any.
    pub fn get(&self, scenario: &str, target: Target, key: Figure) -> Option<f64> {
        let row = self
            .rows
            .iter()
            .find(|r| r.scenario == scenario && r.figure == key)?;
        match row.vals[slot(target)] {
            Some(Val::Num(v)) => Some(v),
            _ => None,
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
                cell(r.figure, &r.vals[0]),
                cell(r.figure, &r.vals[1]),
                ratio(r.figure.better(), &r.vals[0], &r.vals[1])
            );
            if floor {
                // Against the floor the question is the reverse: how many times its cost.
                let _ = write!(
                    out,
                    " {} | {} |",
                    cell(r.figure, &r.vals[2]),
                    ratio(r.figure.better(), &r.vals[2], &r.vals[0])
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
                    Some(Val::Num(n)) => json!(n),
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

fn cell(figure: Figure, v: &Option<Val>) -> String {
    let decimals = match figure.shape() {
        Shape::Num { decimals, .. } => decimals,
        Shape::Text => 0,
    };
    match v {
        None => "—".to_owned(),
        Some(Val::Num(n)) if !n.is_finite() => "n/a".to_owned(),
        Some(Val::Num(n)) => format!("{n:.decimals$}"),
        Some(Val::Text(t)) => t.replace('|', "\\|"),
    }
}

/// How many times better `w` is than `n` (blank when either is not a number).
fn ratio(better: Better, w: &Option<Val>, n: &Option<Val>) -> String {
    let (Some(Val::Num(w)), Some(Val::Num(n))) = (w, n) else {
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
    use crate::figure::{Delivery, Pct, Phases};

    const P99: Figure = Figure::Latency(Pct::P99);
    const DELIVERY_P99: Figure = Figure::Delivery(Phases::All, Delivery::Latency(Pct::P99));
    const DELIVERIES: Figure = Figure::Delivery(Phases::All, Delivery::Rate);

    #[test]
    fn ratio_follows_direction_and_rows_merge() {
        let mut r = Report::default();
        let mut w = Figs::default();
        w.num(Figure::Accepted, 100.0);
        w.num(P99, 2.0);
        r.add("flood", Target::Warden, w);
        let mut n = Figs::default();
        n.num(Figure::Accepted, 10.0);
        n.num(P99, 8.0);
        n.text(Figure::Statuses, "200×3");
        r.add("flood", Target::Node, n);
        let md = r.markdown();
        assert!(
            md.contains("| flood | accepted webhooks/s (2xx) | 100 | 10 | 10× |"),
            "{md}"
        );
        assert!(
            md.contains("|  | latency p99 ms | 2.00 | 8.00 | 4.00× |"),
            "{md}"
        );
        assert!(md.contains("|  | statuses | — | 200×3 |  |"), "{md}");
        assert_eq!(r.json()["Node"]["flood / accepted webhooks/s (2xx)"], 10.0);
        assert_eq!(r.get("flood", Target::Warden, P99), Some(2.0));
        assert_eq!(r.get("flood", Target::Node, Figure::Statuses), None);
        assert_eq!(r.get("flood", Target::Floor, P99), None);
    }

    #[test]
    fn floor_columns_appear_when_the_floor_ran_and_read_as_times_its_cost() {
        let mut r = Report::default();
        let mut w = Figs::default();
        w.num(DELIVERY_P99, 90.0);
        w.num(DELIVERIES, 400.0);
        r.add("fan-out", Target::Warden, w);
        let mut f = Figs::default();
        f.num(DELIVERY_P99, 60.0);
        f.num(DELIVERIES, 500.0);
        r.add("fan-out", Target::Floor, f);
        let mut n = Figs::default();
        n.num(Figure::Accepted, 10.0);
        r.add("flood", Target::Node, n);
        let md = r.markdown();
        assert!(md.starts_with("| scenario | figure | Warden | Node | Warden advantage | floor | × floor |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"), "{md}");
        assert!(
            md.contains("| fan-out | delivery p99 ms | 90.00 | — |  | 60.00 | 1.50× |"),
            "{md}"
        );
        assert!(
            md.contains("|  | deliveries/s | 400 | — |  | 500 | 1.25× |"),
            "{md}"
        );
        assert!(
            md.contains("| flood | accepted webhooks/s (2xx) | — | 10 |  | — |  |"),
            "{md}"
        );
        assert_eq!(r.json()["floor"]["fan-out / delivery p99 ms"], 60.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(pct_ms(&v, 50.0), 50.0);
        assert_eq!(pct_ms(&v, 99.0), 99.0);
        assert_eq!(pct_ms(&v, 100.0), 100.0);
    }
}
