//! `inspect`: layers, shapes, parameters and non-zeros of a saved model.

use std::path::Path;

use netmorph::model_file::{load_scaled, precision};
use netmorph::{Layer, LayerPath, Network, Scalar};

use crate::args::with_precision;
use crate::error::Result;

/// `netmorph inspect`.
pub fn run(model: &Path, json: bool) -> Result<()> {
    with_precision!(precision(model)?, inspect_as(model, json))
}

fn inspect_as<T: Scalar>(model: &Path, json: bool) -> Result<()> {
    let (net, scale) = load_scaled::<T>(model)?;
    let mut rows = Vec::new();
    collect_rows(&net, net.layers(), &[], &mut rows);
    if json {
        let layers: Vec<String> = rows
            .iter()
            .map(|r| format!("{{\"path\":\"{}\",\"type\":\"{}\",\"output\":\"{}\",\"params\":{},\"nonzero\":{}}}", r.0, r.1, r.2, r.3, r.4))
            .collect();
        println!(
            "{{\"params\":{},\"dtype\":\"{}\",\"input_scale\":\"{}\",\"layers\":[{}]}}",
            net.param_count(),
            T::NAME,
            scale.name(),
            layers.join(",")
        );
    } else {
        println!(
            "{:<8} {:<13} {:<14} {:>10} {:>9}",
            "layer", "type", "output", "params", "nonzero"
        );
        for (path, kind, shape, params, nz) in &rows {
            println!("{path:<8} {kind:<13} {shape:<14} {params:>10} {nz:>9}");
        }
        let s = net.input_shape();
        println!(
            "input {}x{}x{} ({} scale), {} parameters ({})",
            s.c,
            s.h,
            s.w,
            scale.name(),
            net.param_count(),
            T::NAME
        );
    }
    Ok(())
}

type Row = (String, &'static str, String, usize, usize);

/// One row per layer (nested blocks' layers after their block): path, type, output shape,
/// parameters and non-zero parameters.
fn collect_rows<T: Scalar>(
    net: &Network<T>,
    layers: &[Layer<T>],
    prefix: &[usize],
    rows: &mut Vec<Row>,
) {
    for (i, l) in layers.iter().enumerate() {
        let mut p = prefix.to_vec();
        p.push(i);
        let path = LayerPath::from_slice(&p).unwrap_or_default();
        let shape = net
            .shape_before(&path.with_last(i + 1))
            .map_or("?".into(), |s| format!("{}x{}x{}", s.c, s.h, s.w));
        let nz = match l {
            Layer::Activation(a) => a.a.iter().filter(|v| v.as_f64() != 0.0).count(),
            l => l.kernel().map_or(0, |k| {
                k.weight
                    .iter()
                    .chain(&k.bias)
                    .filter(|v| v.as_f64() != 0.0)
                    .count()
            }),
        };
        rows.push((path.to_string(), l.name(), shape, l.param_count(), nz));
        if let Layer::ParallelSum(bs) = l {
            for (b, br) in bs.iter().enumerate() {
                let mut q = p.clone();
                q.push(b);
                collect_rows(net, br, &q, rows);
            }
        }
    }
}
