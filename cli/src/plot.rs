//! `vinery sim --plot FILE.svg`: draws the [`Timeline`]s of one scenario
//! or script (one per variant, overlaid) as stacked panels over virtual
//! time.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;
use vinery::sim::{Sample, Timeline};

/// One colour per run overlaid (swim, lifeguard, full in that order).
const COLOURS: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// A line of a panel: its legend suffix and its value in a sample (none
/// where it was not measured).
type Line = (&'static str, fn(&Sample) -> Option<f64>);

/// A panel: its title, and the lines it draws from a sample (the first
/// solid, the others lighter), each with its legend suffix.
struct Panel {
    title: &'static str,
    lines: &'static [Line],
    /// The y axis starts at 0 and ends at 1 (a share).
    share: bool,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "membership seen right: share of the nodes a node holds live iff they run (mean, worst node)",
        lines: &[
            ("mean", |s| Some(s.view_accuracy)),
            ("worst", |s| Some(s.min_view_accuracy)),
        ],
        share: true,
    },
    Panel {
        title: "members held suspect / dead, per running node's view",
        lines: &[("suspect", |s| Some(s.suspect)), ("dead", |s| Some(s.dead))],
        share: false,
    },
    Panel {
        title: "bytes sent per node per second",
        lines: &[("", |s| Some(s.bytes_per_node_s))],
        share: false,
    },
    Panel {
        title: "writes not yet held by every running node",
        lines: &[("", |s| s.writes_pending.map(|p| p as f64))],
        share: false,
    },
];

/// Draws `series` (label, timeline) into the SVG file `path`.
pub fn draw(path: &Path, title: &str, series: &[(&str, &Timeline)]) -> Result<(), Box<dyn Error>> {
    let has_writes = series
        .iter()
        .any(|(_, t)| t.samples.iter().any(|s| s.writes_pending.is_some()));
    let panels: Vec<&Panel> = PANELS
        .iter()
        .filter(|p| has_writes || p.title != PANELS[3].title)
        .collect();
    let t_max = series
        .iter()
        .filter_map(|(_, t)| t.samples.last().map(|s| s.t))
        .fold(1.0, f64::max);
    let height = 40 + 260 * panels.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.titled(title, ("sans-serif", 20))?;
    for (panel, area) in panels.iter().zip(body.split_evenly((panels.len(), 1))) {
        let y_max = if panel.share {
            1.0
        } else {
            let top = series
                .iter()
                .flat_map(|(_, t)| t.samples.iter())
                .flat_map(|s| panel.lines.iter().filter_map(move |(_, f)| f(s)))
                .fold(0.0, f64::max);
            (top * 1.1).max(1.0)
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(panel.title, ("sans-serif", 15))
            .margin(8)
            .margin_right(30)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (label, timeline)) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            for (j, (suffix, f)) in panel.lines.iter().enumerate() {
                let points: Vec<(f64, f64)> = timeline
                    .samples
                    .iter()
                    .filter_map(|s| Some((s.t, f(s)?)))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let style = if j == 0 {
                    ShapeStyle::from(&colour).stroke_width(2)
                } else {
                    ShapeStyle::from(&colour.mix(0.45)).stroke_width(1)
                };
                let name = match (*suffix, series.len()) {
                    ("", _) => (*label).to_owned(),
                    (s, 1) => s.to_owned(),
                    (s, _) => format!("{label} {s}"),
                };
                chart
                    .draw_series(LineSeries::new(points, style))?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
