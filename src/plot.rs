//! Curves as a self-contained SVG (axes, grid, one polyline per series, legend): accuracy
//! curves ([`svg`]) and any other line plot, linear or logarithmic ([`svg_with`]).
//!
//! Written by hand rather than with plotters: plotters draws any text through a font stack
//! (font-kit and system fonts), which small devices and CI machines may lack; SVG `<text>`
//! elements are rendered by the viewer instead.

use std::fmt::Write;

/// One curve: a name and `(x, y)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// How an axis maps values and labels its ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear, ticks at round steps.
    Linear,
    /// Linear, values in `[0, 1]` labelled as percentages, the range rounded out to 5% steps.
    Percent,
    /// Logarithmic (base 10), ticks at 1, 2 and 5 times powers of ten; values must be positive
    /// (others are not drawn).
    Log,
}

/// One axis: its label and scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis<'a> {
    /// Label under (x) or beside (y) the axis.
    pub label: &'a str,
    /// Scale.
    pub scale: Scale,
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#7f7f7f",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG document plotting `series` as accuracy curves (x: epochs, y: accuracy in percent).
///
/// # Examples
/// ```
/// use netmorph::plot::{svg, Series};
/// let s = svg("accuracy", &[Series { name: "parent".into(), points: vec![(1.0, 0.5), (2.0, 0.7)] }]);
/// assert!(s.starts_with("<svg") && s.contains("polyline") && s.contains("parent"));
/// ```
pub fn svg(title: &str, series: &[Series]) -> String {
    let x = Axis {
        label: "epoch",
        scale: Scale::Linear,
    };
    let y = Axis {
        label: "test accuracy",
        scale: Scale::Percent,
    };
    svg_with(title, (x, y), series)
}

/// The value range `[lo, hi]` an axis draws for data spanning `[lo, hi]`, and its ticks.
fn ticks(scale: Scale, lo: f64, hi: f64) -> ((f64, f64), Vec<f64>) {
    match scale {
        Scale::Percent => {
            let lo = ((lo * 20.0).floor() / 20.0).max(0.0);
            let hi = ((hi * 20.0).ceil() / 20.0).min(1.0).max(lo + 0.05);
            let steps = ((hi - lo) / 0.05).round() as usize;
            let step = if steps > 12 { 0.1 } else { 0.05 };
            let n = ((hi - lo) / step).round() as usize;
            ((lo, hi), (0..=n).map(|i| lo + step * i as f64).collect())
        }
        Scale::Linear => {
            let hi = if hi > lo { hi } else { lo + 1.0 };
            // A step of 1, 2 or 5 times a power of ten giving at most 10 intervals.
            let raw = (hi - lo) / 10.0;
            let pow = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * pow)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * pow);
            let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
            let n = ((hi - lo) / step).round() as usize;
            ((lo, hi), (0..=n).map(|i| lo + step * i as f64).collect())
        }
        Scale::Log => {
            let (lo, hi) = (
                lo.log10().floor(),
                hi.log10().ceil().max(lo.log10().floor() + 1.0),
            );
            let (lo, hi) = (10f64.powf(lo), 10f64.powf(hi));
            let mut t = Vec::new();
            let mut p = lo;
            while p <= hi * 1.000_001 {
                for m in [1.0, 2.0, 5.0] {
                    if m * p <= hi * 1.000_001 {
                        t.push(m * p);
                    }
                }
                p *= 10.0;
            }
            ((lo, hi), t)
        }
    }
}

/// A tick's label.
fn label(scale: Scale, v: f64) -> String {
    match scale {
        Scale::Percent => format!("{:.0}%", 100.0 * v),
        _ if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.0e}"),
        _ => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// An SVG document plotting `series` with the given axes. Points a log axis cannot show
/// (zero or negative) and non-finite points are left out.
///
/// # Examples
/// ```
/// use netmorph::plot::{svg_with, Axis, Scale, Series};
/// let x = Axis { label: "channels", scale: Scale::Log };
/// let y = Axis { label: "seconds", scale: Scale::Log };
/// let s = svg_with("solve time", (x, y), &[Series { name: "K_2 = 1".into(), points: vec![(32.0, 0.01), (512.0, 1.2)] }]);
/// assert!(s.contains("polyline") && s.contains("seconds") && s.contains(">100<"));
/// ```
pub fn svg_with(title: &str, (xa, ya): (Axis<'_>, Axis<'_>), series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 190.0, 40.0, 55.0);
    let shown = |s: Scale, v: f64| v.is_finite() && (s != Scale::Log || v > 0.0);
    let visible = |&&(x, y): &&(f64, f64)| shown(xa.scale, x) && shown(ya.scale, y);
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()).filter(visible) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 10.0, 0.1, 1.0);
    }
    let ((x0, x1), xticks) = ticks(xa.scale, x0, x1);
    let ((y0, y1), yticks) = ticks(ya.scale, y0, y1);
    let map = |s: Scale, v: f64, lo: f64, hi: f64| match s {
        Scale::Log => (v.log10() - lo.log10()) / (hi.log10() - lo.log10()),
        _ => (v - lo) / (hi - lo),
    };
    let px = |x: f64| left + map(xa.scale, x, x0, x1) * (w - left - right);
    let py = |y: f64| h - bottom - map(ya.scale, y, y0, y1) * (h - top - bottom);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        (left + w - right) / 2.0,
        escape(title)
    );
    for &y in &yticks {
        let (x2, yy) = (w - right, py(y));
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            yy + 4.0,
            label(ya.scale, y)
        );
    }
    // At most ~20 x labels: thin out dense linear ticks (epochs 0..100).
    let every = xticks.len().div_ceil(20).max(1);
    for &x in xticks.iter().step_by(every) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(x),
            h - bottom + 18.0,
            label(xa.scale, x)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>",
        (left + w - right) / 2.0,
        h - 12.0,
        escape(xa.label),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        escape(ya.label),
        w - left - right,
        h - top - bottom
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let dash = if i >= COLORS.len() {
            " stroke-dasharray=\"6 3\""
        } else {
            ""
        };
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(visible)
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
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{points}\"/>\
             <line x1=\"{lx1}\" x2=\"{lx2}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"{dash}/>\
             <text x=\"{tx}\" y=\"{ty:.1}\">{name}</text>"
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_data() {
        let ((lo, hi), t) = ticks(Scale::Linear, 0.13, 9.7);
        assert!(lo <= 0.13 && hi >= 9.7 && t.len() <= 11, "{lo} {hi} {t:?}");
        let ((lo, hi), t) = ticks(Scale::Log, 0.02, 40.0);
        assert_eq!((lo, hi), (0.01, 100.0));
        assert!(t.contains(&1.0) && t.contains(&50.0));
        let ((lo, hi), _) = ticks(Scale::Percent, 0.781, 0.834);
        assert!((lo - 0.75).abs() < 1e-12 && (hi - 0.85).abs() < 1e-12);
    }

    #[test]
    fn log_axes_leave_out_what_they_cannot_show() {
        let x = Axis {
            label: "n",
            scale: Scale::Log,
        };
        let s = Series {
            name: "a".into(),
            points: vec![(0.0, 1.0), (10.0, 2.0), (100.0, f64::NAN), (1000.0, 3.0)],
        };
        let out = svg_with("t", (x, x), &[s]);
        let points = out
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 2, "{points}");
    }
}
