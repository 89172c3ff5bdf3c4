//! The depth solve's time against layer size (issue 11's solver scaling).
//!
//! A `3 x 3` convolution `C -> C` is deepened through `C_l = 4 C` channels with
//! `K_1 = 3` and `K_2 = 1` or `3`, by Algorithms 1 and 2, end to end through `deepen` (random
//! draws, the solve, the independent residual check that composes the returned factors,
//! rescaling, and building the child), in an f32 network solving in f64. Each case runs with
//! the grouped first solve (`solve/mixing.rs`: the fixed factor drawn as block-diagonal times
//! a random rotation of the middle channels) and with the dense solve of the same kind of
//! system, in the same run, so their ratio is measured on the same machine state.

use std::fmt::Write as _;
use std::time::Instant;

use crate::conv_parent;
use netmorph::morph::depth::{deepen, DepthParams};
use netmorph::plot::{svg_with, Axis, Scale, Series};
use netmorph::solve::algorithm::{decompose, Algorithm};
use netmorph::{Kernel, Layer, LayerPath, Rng};

use super::{fail, Outcome, Output};

/// Sizes of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Channel counts `C` (the layer is `C -> C`, `C_l = 4 C`).
    pub channels: Vec<usize>,
    /// Timed runs per case (the median is reported).
    pub repeats: usize,
}

impl Settings {
    /// The full run: `C` from 32 to 512, three runs per case (one for the dense solves past
    /// `C = 256`, which take tens of seconds each).
    pub fn full() -> Self {
        Self {
            channels: vec![32, 64, 128, 256, 512],
            repeats: 3,
        }
    }

    /// CI's run: `C` from 32 (the smallest that groups with `K_2 = 3`) to 64, one run per
    /// case.
    pub fn quick() -> Self {
        Self {
            channels: vec![32, 64],
            repeats: 1,
        }
    }
}

/// One timed case.
struct Case {
    channels: usize,
    k2: usize,
    algorithm: Algorithm,
    grouped: bool,
    /// Blocks the first solve was split into (1: dense).
    groups: usize,
    seconds: f64,
    residual: f64,
    solves: usize,
    nonzero: f64,
}

impl Case {
    fn label(&self) -> String {
        format!(
            "Algorithm {}, K_2 = {}{}",
            if self.algorithm == Algorithm::General {
                1
            } else {
                2
            },
            self.k2,
            if self.grouped { "" } else { ", dense" }
        )
    }
}

/// Runs the benchmark and writes `metrics.csv`, `curves.svg`, `table.md` and `run.md`.
///
/// # Errors
/// A morph that fails or is not exact, or a file that cannot be written.
pub fn run(settings: &Settings, out: &Output) -> Outcome<()> {
    let start = Instant::now();
    let mut cases = Vec::new();
    for &c in &settings.channels {
        let net = conv_parent::<f32>(c, c, 3, 8, 1);
        // The parent filter in the solve's scalar, to read how the solve was split.
        let Some(Layer::Conv2d(conv)) = net.layers().first() else {
            return Err(fail("benchmark parent")(
                &"its first layer is not a convolution",
            ));
        };
        let g = Kernel {
            out: c,
            inp: c,
            k: 3,
            weight: conv.kernel.weight.iter().map(|v| f64::from(*v)).collect(),
            bias: conv.kernel.bias.iter().map(|v| f64::from(*v)).collect(),
        };
        for k2 in [1, 3] {
            for algorithm in [Algorithm::General, Algorithm::Practical] {
                for grouped in [true, false] {
                    let mut p = DepthParams::new(4 * c, 3, k2);
                    p.algorithm = algorithm;
                    p.solve.grouped = grouped;
                    let what = format!(
                        "C = {c}, K_2 = {k2}, {}, {}",
                        algorithm.name(),
                        if grouped { "grouped" } else { "dense" }
                    );
                    let repeats = if !grouped && c > 256 {
                        1
                    } else {
                        settings.repeats
                    };
                    let mut times = Vec::new();
                    let mut rng = Rng::seed(2);
                    let mut last = None;
                    for _ in 0..repeats.max(1) {
                        let t = Instant::now();
                        let (_, report) = deepen(&net, &LayerPath::top(0), &p, &mut rng)
                            .map_err(|e| fail(&what)(&e))?;
                        times.push(t.elapsed().as_secs_f64());
                        last = Some(report);
                    }
                    let Some(report) = last else { continue };
                    if report.residual > p.solve.tol {
                        return Err(fail(&what)(&format!(
                            "residual {:e} above {:e}",
                            report.residual, p.solve.tol
                        )));
                    }
                    times.sort_by(f64::total_cmp);
                    // Untimed: the same solve once more, for its block count.
                    let groups = if grouped {
                        decompose(&g, 4 * c, 3, k2, algorithm, &p.solve, &mut Rng::seed(2))
                            .map_err(|e| fail(&what)(&e))?
                            .groups
                    } else {
                        1
                    };
                    let case = Case {
                        channels: c,
                        k2,
                        algorithm,
                        grouped,
                        groups,
                        seconds: times[times.len() / 2],
                        residual: report.residual,
                        solves: report.solves,
                        nonzero: report.nonzero_fraction,
                    };
                    println!(
                        "C = {c:>3}, C_l = {:>4}, {} ({} blocks): {:.3} s, residual {:.1e}",
                        4 * c,
                        case.label(),
                        case.groups,
                        case.seconds,
                        case.residual
                    );
                    cases.push(case);
                }
            }
        }
    }
    let mut csv = String::from(
        "channels,c_l,k1,k2,algorithm,grouped,blocks,seconds,residual,solves,nonzero_fraction\n",
    );
    for c in &cases {
        let _ = writeln!(
            csv,
            "{},{},3,{},{},{},{},{:.6},{:e},{},{:.6}",
            c.channels,
            4 * c.channels,
            c.k2,
            c.algorithm.name(),
            c.grouped,
            c.groups,
            c.seconds,
            c.residual,
            c.solves,
            c.nonzero
        );
    }
    let mut table = String::from(
        "# Depth solve time against layer size\n\n`deepen` of a `3 x 3` convolution `C -> C` \
         through `C_l = 4 C` channels, `K_1 = 3`, f32 network, f64 solve; median seconds. \
         `dense` solves the whole system; the default groups it (`solve/mixing.rs`).\n\n\
         | C | C_l | K_2 | algorithm | blocks | grouped (s) | dense (s) | speed-up | residual (grouped) | non-zero |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for g in cases.iter().filter(|c| c.grouped) {
        let dense = cases.iter().find(|d| {
            !d.grouped && d.channels == g.channels && d.k2 == g.k2 && d.algorithm == g.algorithm
        });
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {:.1e} | {:.3} |",
            g.channels,
            4 * g.channels,
            g.k2,
            if g.algorithm == Algorithm::General {
                "1"
            } else {
                "2"
            },
            g.groups,
            g.seconds,
            dense.map_or("-".into(), |d| format!("{:.3}", d.seconds)),
            dense.map_or("-".into(), |d| format!("{:.1}x", d.seconds / g.seconds)),
            g.residual,
            g.nonzero
        );
    }
    let mut series: Vec<Series> = Vec::new();
    for c in &cases {
        let name = c.label();
        let point = (c.channels as f64, c.seconds);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name,
                points: vec![point],
            }),
        }
    }
    let svg = svg_with(
        "Depth solve time (C -> C, C_l = 4C, K_1 = 3)",
        (
            Axis {
                label: "channels C",
                scale: Scale::Log,
            },
            Axis {
                label: "seconds",
                scale: Scale::Log,
            },
        ),
        &series,
    );
    let notes = format!(
        "Channels {:?}, C_l = 4 C, K_1 = 3, K_2 = 1 and 3, Algorithms 1 and 2, each grouped \
         and dense; median of {} runs (1 for dense solves past C = 256); `conv_parent` seed 1, \
         morph seed 2.",
        settings.channels, settings.repeats
    );
    let run = out.run_notes(&notes, start.elapsed().as_secs_f64());
    out.write_files(&[
        ("metrics.csv", csv),
        ("curves.svg", svg),
        ("table.md", table),
        ("run.md", run),
    ])
}
