//! Accuracy curves as a self-contained SVG (axes, grid, one polyline per series, legend).
//!
//! Written by hand rather than with plotters: plotters draws any text through a font stack
//! (font-kit and system fonts), which small devices and CI machines may lack; SVG `<text>`
//! elements are rendered by the viewer instead.

use std::fmt::Write;

/// One curve: a name and `(x, y)` points with `y` in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG document plotting `series` (x: epochs, y: accuracy in percent).
///
/// # Examples
/// ```
/// use netmorph::plot::{svg, Series};
/// let s = svg("accuracy", &[Series { name: "parent".into(), points: vec![(1.0, 0.5), (2.0, 0.7)] }]);
/// assert!(s.starts_with("<svg") && s.contains("polyline") && s.contains("parent"));
/// ```
pub fn svg(title: &str, series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 60.0, 160.0, 40.0, 50.0);
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    // Round the accuracy range out to whole 5 % steps.
    let y0 = ((y0 * 20.0).floor() / 20.0).max(0.0);
    let y1 = ((y1 * 20.0).ceil() / 20.0).min(1.0).max(y0 + 0.05);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        (left + w - right) / 2.0,
        escape(title)
    );
    let steps = ((y1 - y0) / 0.05).round() as usize;
    for i in 0..=steps {
        let y = y0 + 0.05 * i as f64;
        let (x2, yy, tx, ty, pct) = (w - right, py(y), left - 6.0, py(y) + 4.0, 100.0 * y);
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{pct:.0}%</text>"
        );
    }
    let xticks = (x1 - x0).round().clamp(1.0, 20.0) as usize;
    for i in 0..=xticks {
        let x = x0 + (x1 - x0) * i as f64 / xticks as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>",
            px(x),
            h - bottom + 18.0,
            x
        );
    }
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        (left + w - right) / 2.0,
        h - 12.0,
        w - left - right,
        h - top - bottom
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let (points, lx1, lx2, ly) = (
            pts.join(" "),
            w - right + 12.0,
            w - right + 32.0,
            top + 10.0 + 18.0 * i as f64,
        );
        let (tx, ty, name) = (w - right + 38.0, ly + 4.0, escape(&s.name));
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>\
             <line x1=\"{lx1}\" x2=\"{lx2}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\">{name}</text>"
        );
    }
    out.push_str("</svg>\n");
    out
}
