//! A server-rendered SVG scatter chart: latency against throughput, one colour per hardware type, the
//! best trade-offs ringed. Plain SVG with a `<title>` per point (a tooltip) and a text alternative.

use std::fmt::Write;

use super::format;

/// One point.
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub series: String,
    pub best: bool,
    pub label: String,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// Colours that stay apart for common colour-vision deficiencies (Okabe–Ito).
const COLOURS: &[&str] = &["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"];

/// The chart as an SVG element; `description` is its accessible summary.
pub fn scatter(points: &[Point], x_label: &str, y_label: &str, description: &str) -> String {
    let mut series: Vec<&str> = points.iter().map(|point| point.series.as_str()).collect();
    series.sort_unstable();
    series.dedup();
    let colour = |name: &str| COLOURS[series.iter().position(|known| *known == name).unwrap_or(0) % COLOURS.len()];
    let (x_ticks, x_max) = ticks(points.iter().map(|point| point.x).fold(0.0, f64::max));
    let (y_ticks, y_max) = ticks(points.iter().map(|point| point.y).fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + x / x_max * plot_w;
    let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">{} against {}</title><desc id="chart-desc">{}</desc>"#,
        escape(y_label),
        escape(x_label),
        escape(description)
    );
    for tick in &x_ticks {
        let x = sx(*tick);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            format::number(*tick)
        );
    }
    for tick in &y_ticks {
        let y = sy(*tick);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + plot_w,
            LEFT - 8.0,
            y + 4.0,
            format::number(*tick)
        );
    }
    let _ = write!(
        svg,
        r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="axis" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for point in points {
        let (x, y) = (sx(point.x), sy(point.y));
        if point.best {
            let _ = write!(svg, r#"<circle class="best" cx="{x:.1}" cy="{y:.1}" r="10"/>"#);
        }
        let _ = write!(
            svg,
            r#"<circle class="point" cx="{x:.1}" cy="{y:.1}" r="5" fill="{}"><title>{}</title></circle>"#,
            colour(&point.series),
            escape(&point.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The legend: (series, colour) pairs, in the chart's order.
pub fn legend(points: &[Point]) -> Vec<(String, &'static str)> {
    let mut series: Vec<&str> = points.iter().map(|point| point.series.as_str()).collect();
    series.sort_unstable();
    series.dedup();
    series.iter().enumerate().map(|(at, name)| (name.to_string(), COLOURS[at % COLOURS.len()])).collect()
}

/// Round tick values from 0 to at least `max`, and the axis end.
fn ticks(max: f64) -> (Vec<f64>, f64) {
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|factor| factor * magnitude).find(|step| *step >= rough).unwrap_or(rough);
    let count = (max / step).ceil() as usize;
    let ticks: Vec<f64> = (0..=count).map(|at| at as f64 * step).collect();
    let end = ticks.last().copied().unwrap_or(max);
    (ticks, end)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(12.0), (vec![0.0, 2.5, 5.0, 7.5, 10.0, 12.5], 12.5));
        assert_eq!(ticks(95.0).1, 100.0);
        assert_eq!(ticks(0.0).1, 1.0);
    }

    #[test]
    fn labels_are_escaped_and_best_points_ringed() {
        let points = [
            Point { x: 3.0, y: 40.0, series: "H100".into(), best: true, label: "<b>".into() },
            Point { x: 1.0, y: 90.0, series: "L40S".into(), best: false, label: "x".into() },
        ];
        let svg = scatter(&points, "rps", "ttft <p90>", "two points");
        assert!(svg.contains("&lt;b&gt;") && svg.contains("ttft &lt;p90&gt;") && !svg.contains("<b>"));
        assert_eq!(svg.matches(r#"class="best""#).count(), 1);
        assert_eq!(svg.matches(r#"class="point""#).count(), 2);
    }
}
