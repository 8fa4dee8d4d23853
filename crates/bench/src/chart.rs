//! `porter-bench chart`: SVG charts from result JSON, so a benchmark's figures can be looked at
//! and committed next to its tables.
//!
//! - Throughput bars, one chart per scenario family (work queue, fan-out, kafka): a group of
//!   bars per workload (scenario and record size), one bar per broker label, the median of its
//!   closed-loop runs.
//! - Latency against throughput, one chart per open-loop workload: achieved msgs/s against p99
//!   (log scale), one line per label through its rates (medians over repeated runs).
//! - Peak shaving: queue depth and broker RSS over time, one line per label.
//!
//! plotters with only its SVG backend: text goes out as `<text>` sized by plotters' naive font
//! metrics, so nothing needs fontconfig or a font file at build or run time.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::RunResult;

/// Bar charts: width per workload group, and the least width of a chart.
const GROUP_WIDTH_PX: u32 = 170;
const MIN_WIDTH_PX: u32 = 640;
const HEIGHT_PX: u32 = 440;
const CURVE_WIDTH_PX: u32 = 760;
/// Share of a group's width its bars take (the rest separates groups).
const BARS_SHARE: f64 = 0.8;
/// Headroom above the tallest bar for its value label and the legend.
const BAR_HEADROOM: f64 = 1.3;
const FONT: &str = "sans-serif";
/// Colours by label order; a colour-blind-safe set (Okabe-Ito).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(0, 0, 0),
];

#[derive(clap::Args, Debug, Clone)]
pub struct ChartArgs {
    /// Result JSON files (one result or an array of them), or directories of them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory the SVG files go to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Draws every chart the results allow; returns the files written.
pub fn run(args: &ChartArgs) -> Result<Vec<PathBuf>> {
    let results = load(&args.inputs)?;
    anyhow::ensure!(!results.is_empty(), "no results found in {:?}", args.inputs);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut written = Vec::new();
    written.extend(throughput_charts(&results, &args.out)?);
    written.extend(latency_charts(&results, &args.out)?);
    written.extend(peak_charts(&results, &args.out)?);
    if written.is_empty() {
        eprintln!(
            "chart: {} results, but none a chart can show",
            results.len()
        );
    }
    Ok(written)
}

/// Reads results from files and directories (`*.json` directly inside, in name order); a file
/// that is not a result (or array of results) is skipped with a warning.
pub fn load(inputs: &[PathBuf]) -> Result<Vec<RunResult>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(input.clone());
        }
    }
    let mut results = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        match serde_json::from_str::<Vec<RunResult>>(&text) {
            Ok(many) => results.extend(many),
            Err(_) => match serde_json::from_str::<RunResult>(&text) {
                Ok(one) => results.push(one),
                Err(e) => eprintln!("chart: skipping {}: {e}", file.display()),
            },
        }
    }
    Ok(results)
}

/// The asked rate of an open-loop run: its field, or for results written before it existed,
/// the " @RATE/s" its scenario ends in.
pub fn open_loop_rate(r: &RunResult) -> Option<u64> {
    r.rate.or_else(|| {
        let (_, tail) = r.scenario.rsplit_once(" @")?;
        tail.strip_suffix("/s")?.parse().ok()
    })
}

/// What was measured regardless of load: the scenario without its rate, and the record size.
pub fn workload(r: &RunResult) -> String {
    let scenario = match r.scenario.rsplit_once(" @") {
        Some((head, tail)) if open_loop_rate(r).is_some() && tail.ends_with("/s") => head,
        _ => r.scenario.as_str(),
    };
    format!("{scenario}, {} B", r.record_bytes)
}

/// The first word of a scenario ("amqp-work-queue", "amqp-fanout", "kafka"): runs of one family
/// share a chart.
fn family(workload: &str) -> &str {
    workload.split_whitespace().next().unwrap_or("results")
}

/// A workload's name within its family's chart.
fn short_name(workload: &str) -> &str {
    workload
        .split_once(' ')
        .map_or(workload, |(_, rest)| rest.trim())
}

/// Orders "1p/2q" before "1p/10q": runs of digits compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, x), (db, y)) in ca.iter().zip(&cb) {
        let order = if *da && *db {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ca.len().cmp(&cb.len())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// A file name from a title: lowercase letters, digits and single dashes.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// 12345 as "12.3k", 2500000 as "2.5M".
fn si(value: f64) -> String {
    match value.abs() {
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e4 => format!("{:.0}k", value / 1e3),
        v if v >= 1e3 => format!("{:.1}k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

fn colour(labels: &[String], label: &str) -> RGBColor {
    let index = labels.iter().position(|l| l == label).unwrap_or(0);
    PALETTE[index % PALETTE.len()]
}

fn labels_of<'a>(runs: impl Iterator<Item = &'a RunResult>) -> Vec<String> {
    let mut labels: Vec<String> = runs.map(|r| r.label.clone()).collect();
    labels.sort();
    labels.dedup();
    labels
}

fn is_closed_loop(r: &RunResult) -> bool {
    r.peak.is_none() && open_loop_rate(r).is_none() && r.consumed > 0
}

fn throughput_charts(results: &[RunResult], out: &Path) -> Result<Vec<PathBuf>> {
    // family -> workload -> label -> consumed msgs/s of each run
    let mut families: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<f64>>>> =
        BTreeMap::new();
    for r in results.iter().filter(|r| is_closed_loop(r)) {
        let w = workload(r);
        families
            .entry(family(&w).to_string())
            .or_default()
            .entry(w.clone())
            .or_default()
            .entry(r.label.clone())
            .or_default()
            .push(r.consume_records_per_sec);
    }
    let labels = labels_of(results.iter().filter(|r| is_closed_loop(r)));
    let mut written = Vec::new();
    for (family, workloads) in families {
        let mut groups: Vec<(String, BTreeMap<String, f64>)> = workloads
            .into_iter()
            .map(|(w, by_label)| {
                let medians = by_label.into_iter().map(|(l, v)| (l, median(v))).collect();
                (short_name(&w).to_string(), medians)
            })
            .collect();
        groups.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        let path = out.join(format!("throughput-{}.svg", slug(&family)));
        bar_chart(&path, &family, &groups, &labels)
            .with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn bar_chart(
    path: &Path,
    family: &str,
    groups: &[(String, BTreeMap<String, f64>)],
    labels: &[String],
) -> Result<()> {
    let n = groups.len();
    let width = (GROUP_WIDTH_PX * n as u32 + 120).max(MIN_WIDTH_PX);
    let root = SVGBackend::new(path, (width, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = groups
        .iter()
        .flat_map(|(_, v)| v.values().copied())
        .fold(0.0, f64::max)
        .max(1.0);
    let names: Vec<String> = groups.iter().map(|(name, _)| name.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{family}: throughput (median of closed-loop runs)"),
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..top * BAR_HEADROOM)?;
    // Group names at the centres: 2n+1 labels over 0..n puts the key points half a group apart
    // (plotters' steps are 1, 2 or 5 times a power of ten); the whole ones, the group borders,
    // stay unnamed. (`with_key_points` would say it directly but loses f64's label formatter.)
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| {
            let centre = x - x.floor();
            match names.get(x.floor().max(0.0) as usize) {
                Some(name) if (centre - 0.5).abs() < 1e-6 => name.clone(),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| si(*y))
        .y_desc("consumed msgs/s (deliveries for fan-out)")
        .label_style((FONT, 12))
        .draw()?;
    let bar = BARS_SHARE / labels.len().max(1) as f64;
    for (j, label) in labels.iter().enumerate() {
        let fill = colour(labels, label);
        let bars: Vec<(f64, f64)> = groups
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.get(label).map(|y| (i as f64, *y)))
            .collect();
        let left = |i: f64| i + (1.0 - BARS_SHARE) / 2.0 + j as f64 * bar;
        chart
            .draw_series(bars.iter().map(|&(i, y)| {
                Rectangle::new([(left(i), 0.0), (left(i) + bar, y)], fill.filled())
            }))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], fill.filled()));
        let value_style =
            TextStyle::from((FONT, 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(
            bars.iter()
                .map(|&(i, y)| Text::new(si(y), (left(i) + bar / 2.0, y), value_style.clone())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One point of a latency curve: achieved msgs/s and p99 ms at one asked rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub rate: u64,
    pub achieved: f64,
    pub p99_ms: f64,
}

/// The curves of one open-loop workload: per label, a point per rate (medians over runs),
/// in rate order.
pub fn curves(results: &[RunResult]) -> BTreeMap<String, BTreeMap<String, Vec<CurvePoint>>> {
    // workload -> label -> rate -> runs
    let mut runs: BTreeMap<String, BTreeMap<String, BTreeMap<u64, Vec<&RunResult>>>> =
        BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.peak.is_none() && r.consumed > 0)
    {
        let Some(rate) = open_loop_rate(r) else {
            continue;
        };
        runs.entry(workload(r))
            .or_default()
            .entry(r.label.clone())
            .or_default()
            .entry(rate)
            .or_default()
            .push(r);
    }
    runs.into_iter()
        .map(|(w, by_label)| {
            let lines = by_label
                .into_iter()
                .map(|(label, by_rate)| {
                    let points = by_rate
                        .into_iter()
                        .map(|(rate, rs)| CurvePoint {
                            rate,
                            achieved: median(
                                rs.iter().map(|r| r.consume_records_per_sec).collect(),
                            ),
                            p99_ms: median(
                                rs.iter()
                                    .map(|r| r.end_to_end.p99_us as f64 / 1000.0)
                                    .collect(),
                            ),
                        })
                        .collect();
                    (label, points)
                })
                .collect();
            (w, lines)
        })
        .collect()
}

fn latency_charts(results: &[RunResult], out: &Path) -> Result<Vec<PathBuf>> {
    let labels = labels_of(results.iter());
    let mut written = Vec::new();
    for (w, lines) in curves(results) {
        let path = out.join(format!("latency-{}.svg", slug(&w)));
        curve_chart(&path, &w, &lines, &labels)
            .with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn curve_chart(
    path: &Path,
    workload: &str,
    lines: &BTreeMap<String, Vec<CurvePoint>>,
    labels: &[String],
) -> Result<()> {
    let points = || lines.values().flatten();
    let x_max = points().map(|p| p.achieved).fold(0.0, f64::max).max(1.0) * 1.1;
    // Log scale from decade to decade, so the axis always has labelled powers of ten (a hair
    // wider: plotters computes the decades with powf and would miss an end one by rounding);
    // a floor above zero (1 us) for the logarithm.
    let floor = 0.001;
    let decade_below = |v: f64| 10f64.powf(v.log10().floor()) * 0.99;
    let decade_above = |v: f64| 10f64.powf(v.log10().ceil()) * 1.01;
    let y_min = decade_below(
        points()
            .map(|p| p.p99_ms.max(floor))
            .fold(f64::MAX, f64::min),
    );
    let y_max = decade_above(points().map(|p| p.p99_ms.max(floor)).fold(0.0, f64::max) * 1.01);
    let root = SVGBackend::new(path, (CURVE_WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: p99 latency against throughput (open loop)"),
            (FONT, 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, (y_min..y_max.max(y_min * 10.0)).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("achieved msgs/s (consumed)")
        .y_desc("end-to-end p99, ms (log)")
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|y| format!("{}", (y * 1000.0).round() / 1000.0))
        .label_style((FONT, 12))
        .draw()?;
    for (label, line) in lines {
        let stroke = colour(labels, label);
        let xy: Vec<(f64, f64)> = line
            .iter()
            .map(|p| (p.achieved, p.p99_ms.max(floor)))
            .collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), stroke.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], stroke.stroke_width(2)));
        chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, stroke.filled())))?;
        // The asked rate next to each point (a few pixels off it): where the curve bends is
        // where achieved falls behind asked.
        let style = TextStyle::from((FONT, 10).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(line.iter().zip(&xy).map(|(p, &xy)| {
            EmptyElement::at(xy)
                + Text::new(format!("@{}", si(p.rate as f64)), (5, -3), style.clone())
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}

fn peak_charts(results: &[RunResult], out: &Path) -> Result<Vec<PathBuf>> {
    // workload -> label -> the first run (a timeline does not average)
    let mut runs: BTreeMap<String, BTreeMap<String, &RunResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.peak.is_some()) {
        runs.entry(workload(r))
            .or_default()
            .entry(r.label.clone())
            .or_insert(r);
    }
    let labels = labels_of(results.iter());
    let mut written = Vec::new();
    for (w, by_label) in runs {
        type Pick = fn(&RunResult) -> Vec<(f64, f64)>;
        let depth: Pick = |r| {
            let p = r.peak.as_ref().expect("filtered on peak");
            let points = p.depth_timeline.iter();
            points
                .map(|t| (t.t_ms as f64 / 1000.0, t.value as f64))
                .collect()
        };
        let rss: Pick = |r| {
            let p = r.peak.as_ref().expect("filtered on peak");
            let points = p.rss_timeline.iter();
            points
                .map(|t| (t.t_ms as f64 / 1000.0, t.value as f64 / 1024.0))
                .collect()
        };
        for (kind, y_desc, pick) in [
            ("depth", "queue depth, messages", depth),
            ("rss", "broker RSS, MiB", rss),
        ] {
            let lines: Vec<(String, Vec<(f64, f64)>)> = by_label
                .iter()
                .map(|(label, r)| (label.clone(), pick(r)))
                .filter(|(_, points)| !points.is_empty())
                .collect();
            if lines.is_empty() {
                continue;
            }
            let path = out.join(format!("peak-{kind}-{}.svg", slug(&w)));
            timeline_chart(&path, &format!("{w}: {y_desc}"), y_desc, &lines, &labels)
                .with_context(|| format!("drawing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

fn timeline_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    lines: &[(String, Vec<(f64, f64)>)],
    labels: &[String],
) -> Result<()> {
    let points = || lines.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;
    let root = SVGBackend::new(path, (CURVE_WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds from the start of the run")
        .y_desc(y_desc)
        .y_label_formatter(&|y| si(*y))
        .label_style((FONT, 12))
        .draw()?;
    for (label, line) in lines {
        let stroke = colour(labels, label);
        chart
            .draw_series(LineSeries::new(line.clone(), stroke.stroke_width(2)))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], stroke.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{rate_suffix, PeakResult, TimePoint};
    use crate::stats::Latency;

    fn run(label: &str, scenario: &str, rate: Option<u64>, per_sec: f64, p99_us: u64) -> RunResult {
        RunResult {
            label: label.into(),
            scenario: format!("{scenario}{}", rate.map(rate_suffix).unwrap_or_default()),
            record_bytes: 100,
            produced: 1000,
            consumed: 1000,
            consume_records_per_sec: per_sec,
            end_to_end: Latency {
                p99_us,
                ..Latency::default()
            },
            rate,
            ..RunResult::default()
        }
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["1p/100q", "1p/1q", "1p/10q", "4p/4c", "1p/1c"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1p/1c", "1p/1q", "1p/10q", "1p/100q", "4p/4c"]);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
    }

    #[test]
    fn workload_drops_the_rate_and_keeps_the_size() {
        let open = run("p", "amqp-work-queue 1p/1c", Some(2000), 0.0, 0);
        assert_eq!(workload(&open), "amqp-work-queue 1p/1c, 100 B");
        assert_eq!(open_loop_rate(&open), Some(2000));
        // Written before the rate field: the scenario still says it.
        let old = RunResult {
            rate: None,
            ..open.clone()
        };
        assert_eq!(open_loop_rate(&old), Some(2000));
        assert_eq!(workload(&old), workload(&open));
        let closed = run("p", "amqp-work-queue 1p/1c", None, 0.0, 0);
        assert_eq!(open_loop_rate(&closed), None);
        assert_eq!(family(&workload(&closed)), "amqp-work-queue");
        assert_eq!(short_name(&workload(&closed)), "1p/1c, 100 B");
    }

    #[test]
    fn curves_take_medians_per_rate_in_rate_order() {
        let w = "amqp-work-queue 1p/1c";
        let results = vec![
            run("porter", w, Some(4000), 3900.0, 5_000),
            run("porter", w, Some(2000), 2000.0, 1_000),
            run("porter", w, Some(2000), 1990.0, 3_000),
            run("porter", w, Some(2000), 1980.0, 2_000),
            run("rabbitmq", w, Some(2000), 1900.0, 9_000),
            run("porter", w, None, 50_000.0, 1),
        ];
        let c = curves(&results);
        let porter = &c["amqp-work-queue 1p/1c, 100 B"]["porter"];
        assert_eq!(
            porter,
            &[
                CurvePoint {
                    rate: 2000,
                    achieved: 1990.0,
                    p99_ms: 2.0
                },
                CurvePoint {
                    rate: 4000,
                    achieved: 3900.0,
                    p99_ms: 5.0
                },
            ]
        );
        assert_eq!(c["amqp-work-queue 1p/1c, 100 B"]["rabbitmq"].len(), 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            slug("amqp-fanout 1p/10q, 100 B"),
            "amqp-fanout-1p-10q-100-b"
        );
        assert_eq!(si(950.0), "950");
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(25_000.0), "25k");
        assert_eq!(si(2_500_000.0), "2.5M");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![1.0, 2.0]), 1.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn draws_every_kind_of_chart_from_json_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let wq = "amqp-work-queue 1p/1c";
        let mut results = vec![
            run("porter", wq, None, 40_000.0, 900),
            run("rabbitmq", wq, None, 12_000.0, 3_000),
            run("porter", "amqp-fanout 1p/10q", None, 90_000.0, 900),
        ];
        for rate in [1000, 2000, 4000] {
            results.push(run("porter", wq, Some(rate), rate as f64, 800));
            results.push(run("rabbitmq", wq, Some(rate), rate as f64 * 0.9, 4_000));
        }
        let mut peak = run(
            "porter",
            "amqp-peak 100/s x10 into max-length 500",
            None,
            99.0,
            1,
        );
        peak.peak = Some(PeakResult {
            depth_timeline: vec![
                TimePoint { t_ms: 0, value: 0 },
                TimePoint {
                    t_ms: 100,
                    value: 500,
                },
            ],
            rss_timeline: vec![TimePoint {
                t_ms: 250,
                value: 20_480,
            }],
            ..PeakResult::default()
        });
        results.push(peak);
        // As porter-bench writes them: one file per run, plus one array and one stray file.
        let input = dir.path().join("in");
        std::fs::create_dir(&input).unwrap();
        for (i, r) in results.iter().enumerate().skip(1) {
            let file = input.join(format!("{i}.json"));
            std::fs::write(file, serde_json::to_vec(r).unwrap()).unwrap();
        }
        let array = dir.path().join("array.json");
        std::fs::write(&array, serde_json::to_vec(&results[..1]).unwrap()).unwrap();
        std::fs::write(input.join("notes.json"), "not a result").unwrap();

        let out = dir.path().join("charts");
        let written = super::run(&ChartArgs {
            inputs: vec![input, array],
            out: out.clone(),
        })
        .unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "throughput-amqp-fanout.svg",
                "throughput-amqp-work-queue.svg",
                "latency-amqp-work-queue-1p-1c-100-b.svg",
                "peak-depth-amqp-peak-100-s-x10-into-max-length-500-100-b.svg",
                "peak-rss-amqp-peak-100-s-x10-into-max-length-500-100-b.svg",
            ]
        );
        let bars = std::fs::read_to_string(out.join(&names[1])).unwrap();
        assert!(bars.starts_with("<svg"), "{}", &bars[..100]);
        for text in ["porter", "rabbitmq", "1p/1c, 100 B", "40k", "12k"] {
            assert!(bars.contains(text), "bar chart lacks {text}");
        }
        let curve = std::fs::read_to_string(out.join(&names[2])).unwrap();
        assert!(curve.contains("<polyline"), "a line per label");
        assert!(curve.contains("@4.0k"));
        for decade in ["0.1", "1", "10"] {
            assert!(
                curve.contains(&format!(">\n{decade}\n<")),
                "no {decade} on the y axis"
            );
        }
    }
}
