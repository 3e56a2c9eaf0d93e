//! Line charts as SVG drawn on the server: no script, nothing fetched. The geometry is
//! computed here (numbers only); the template writes it, escaping every label.
//!
//! Floating point here is for drawing and display (coordinates, rates, milliseconds),
//! never for money: the figures themselves are integer counts.
#![allow(clippy::float_arithmetic)]

/// The drawing's size in SVG units (it scales to the page's width).
pub const WIDTH: f64 = 720.0;
/// Its height.
pub const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// A chart: its lines over the same points, with axes.
pub struct Chart {
    /// What it shows, with its unit.
    pub title: String,
    /// Labels of the value axis, bottom to top.
    pub y_ticks: Vec<Tick>,
    /// Labels of the time axis.
    pub x_ticks: Vec<Tick>,
    /// The lines.
    pub lines: Vec<Line>,
    /// Whether no line has a value (the chart says so instead of drawing).
    pub empty: bool,
}

/// A label on an axis, at a position in SVG units.
pub struct Tick {
    /// Where (y for the value axis, x for the time axis).
    pub at: String,
    /// What it says.
    pub label: String,
    /// How the label sits on its place (`start`, `middle`, `end`): the time axis's first
    /// and last labels stay inside the drawing.
    pub anchor: &'static str,
}

/// One series, drawn as the runs of points that have a value.
pub struct Line {
    /// Its name in the legend.
    pub name: String,
    /// The CSS class that colours it.
    pub class: String,
    /// Each run of consecutive points with a value, as an SVG `points` list; a run of one
    /// point is drawn as a dot.
    pub runs: Vec<Run>,
}

/// A run of points.
pub struct Run {
    /// `x,y x,y …`.
    pub points: String,
    /// The point, when the run is one point.
    pub dot: Option<(String, String)>,
}

/// A series before drawing: its name, class and one value per point (`None`: no value).
pub struct Series {
    /// Its name.
    pub name: String,
    /// Its CSS class.
    pub class: String,
    /// A value per point.
    pub values: Vec<Option<f64>>,
}

/// Draws `series` over `points` points, the first starting at `from_unix_ms`, each
/// `point_ms` long; `time_label` writes an instant for the time axis, `value_label` a
/// value for the value axis.
pub fn draw(
    title: String,
    series: Vec<Series>,
    from_unix_ms: i64,
    point_ms: i64,
    time_label: impl Fn(i64) -> String,
    value_label: impl Fn(f64) -> String,
) -> Chart {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let highest = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let empty = series.iter().all(|s| s.values.iter().all(Option::is_none));
    let top = nice_ceiling(highest);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    #[allow(clippy::cast_precision_loss)]
    let x_of = |i: usize| {
        if points <= 1 {
            LEFT
        } else {
            LEFT + plot_w * i as f64 / (points - 1) as f64
        }
    };
    let y_of = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    let lines = series
        .into_iter()
        .map(|s| {
            let mut runs = Vec::new();
            let mut current: Vec<(f64, f64)> = Vec::new();
            for (i, value) in s.values.iter().enumerate() {
                match value {
                    Some(v) if v.is_finite() => current.push((x_of(i), y_of(*v))),
                    _ => runs.extend(run_of(std::mem::take(&mut current))),
                }
            }
            runs.extend(run_of(current));
            Line {
                name: s.name,
                class: s.class,
                runs,
            }
        })
        .collect();
    let y_ticks = [0.0, 0.5, 1.0]
        .into_iter()
        .map(|share| Tick {
            at: format!("{:.1}", y_of(top * share)),
            label: value_label(top * share),
            anchor: "end",
        })
        .collect();
    let x_ticks = if points == 0 {
        Vec::new()
    } else {
        [(0, "start"), (points / 2, "middle"), (points - 1, "end")]
            .into_iter()
            .map(|(i, anchor)| Tick {
                at: format!("{:.1}", x_of(i)),
                label: time_label(from_unix_ms + i64::try_from(i).unwrap_or(0) * point_ms),
                anchor,
            })
            .collect()
    };
    Chart {
        title,
        y_ticks,
        x_ticks,
        lines,
        empty,
    }
}

fn run_of(points: Vec<(f64, f64)>) -> Option<Run> {
    match points.as_slice() {
        [] => None,
        [(x, y)] => Some(Run {
            points: format!("{x:.1},{y:.1}"),
            dot: Some((format!("{x:.1}"), format!("{y:.1}"))),
        }),
        _ => Some(Run {
            points: points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect::<Vec<_>>()
                .join(" "),
            dot: None,
        }),
    }
}

/// The smallest of 1, 2 or 5 × 10ⁿ at or above `value` (1 for nothing to show).
fn nice_ceiling(value: f64) -> f64 {
    if value.is_nan() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10_f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * magnitude >= value {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_axis_ends_at_a_round_number_above_the_highest_value() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(7.2), 10.0);
        assert_eq!(nice_ceiling(1_234.0), 2_000.0);
    }

    #[test]
    fn gaps_split_a_line_and_a_lone_point_is_a_dot() {
        let chart = draw(
            "t".into(),
            vec![Series {
                name: "a".into(),
                class: "s0".into(),
                values: vec![Some(1.0), Some(2.0), None, Some(2.0), None],
            }],
            0,
            10_000,
            |ms| ms.to_string(),
            |v| v.to_string(),
        );
        let runs = &chart.lines[0].runs;
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].points.split(' ').count(), 2);
        assert!(runs[0].dot.is_none());
        assert!(runs[1].dot.is_some());
        assert!(!chart.empty);
        // The highest value (2) is at the top of the plot, zero at its bottom.
        assert_eq!(runs[0].points, "56.0,83.0 220.0,8.0");
        assert_eq!(
            chart
                .x_ticks
                .iter()
                .map(|t| t.label.as_str())
                .collect::<Vec<_>>(),
            ["0", "20000", "40000"]
        );
    }
}
