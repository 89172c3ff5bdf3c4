//! Model files: save then load is bit-identical, morph then save then load still preserves
//! the function, and bad files give clear errors without leaving partial outputs.

mod common;

use common::temp_dir;

use std::collections::HashMap;

use netmorph::model_file::{from_bytes, load, save, to_bytes, ModelFileError, METADATA_KEY};
use netmorph::{Network, Rng, Scalar, Tensor};
use netmorph_verify::strategies::{concretize, network, plan};
use proptest::prelude::*;
use safetensors::tensor::SafeTensors;

fn round_trip<T: Scalar>(net: &Network<T>) -> Result<(), TestCaseError> {
    let back: Network<T> = from_bytes(&to_bytes(net).unwrap()).unwrap();
    // Bit-identical: compare the raw bits of every parameter via the f64 widening (exact).
    prop_assert_eq!(&back, net);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn save_load_is_bit_identical(n32 in network::<f32>(), n64 in network::<f64>()) {
        round_trip(&n32)?;
        round_trip(&n64)?;
    }

    #[test]
    fn morphed_networks_round_trip_and_preserve(net in network::<f32>(), choices in plan(), seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let mut cur = net.clone();
        for ch in &choices {
            cur = concretize(&cur, ch).apply(&cur, &mut rng).unwrap().0;
        }
        let back: Network<f32> = from_bytes(&to_bytes(&cur).unwrap()).unwrap();
        prop_assert_eq!(&back, &cur);
        let x = Tensor::random(3, net.input_shape(), &mut rng);
        let (d, s) = back.forward(&x).unwrap().max_abs_diff(&net.forward(&x).unwrap());
        prop_assert!(d <= netmorph_verify::tolerance::PRESERVE_F32 * s.max(f64::MIN_POSITIVE));
    }
}

fn sample() -> Network<f64> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    network::<f64>().new_tree(&mut runner).unwrap().current()
}

#[test]
fn save_writes_atomically_and_loads() {
    let dir = temp_dir("save");
    let path = dir.join("model.safetensors");
    let net = sample();
    save(&net, &path).unwrap();
    assert_eq!(load::<f64>(&path).unwrap(), net);
    // Only the model is left in the directory: the temporary file was renamed.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.safetensors")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn devices_are_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let null = std::path::Path::new("/dev/null");
    save(&sample(), null).unwrap();
    let kind = std::fs::metadata(null).unwrap().file_type();
    assert!(kind.is_char_device(), "/dev/null was replaced: {kind:?}");
}

#[test]
fn missing_directory_is_an_io_error_without_leftovers() {
    let dir = temp_dir("missing");
    let path = dir.join("no/such/dir/model.safetensors");
    let err = save(&sample(), &path).unwrap_err();
    assert!(matches!(err, ModelFileError::Io { .. }));
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_files_are_reported_as_corrupt() {
    let bytes = to_bytes(&sample()).unwrap();
    for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
        let err = from_bytes::<f64>(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, ModelFileError::Corrupt { .. }),
            "cut {cut}: {err}"
        );
    }
    let dir = temp_dir("corrupt");
    let path = dir.join("bad.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load::<f64>(&path).unwrap_err();
    assert!(
        err.to_string().contains("bad.safetensors") && err.to_string().contains("corrupt"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Re-serializes `bytes` with the architecture JSON edited by `edit`.
fn with_metadata(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let arch = meta.metadata().as_ref().unwrap()[METADATA_KEY].clone();
    let tensors = st.tensors();
    safetensors::serialize(
        tensors,
        Some(HashMap::from([(METADATA_KEY.to_string(), edit(&arch))])),
    )
    .unwrap()
}

#[test]
fn metadata_that_disagrees_with_tensors_is_refused() {
    let bytes = to_bytes(&sample()).unwrap();
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, Edit); 5] = [
        (
            "shape",
            Box::new(|a: &str| {
                a.replacen("\"out\":", "\"out\":1000+", 1)
                    .replace("1000+", "10")
            }),
        ),
        (
            "missing tensor",
            Box::new(|a: &str| a.replacen("layers.0.weight", "layers.0.nothing", 1)),
        ),
        (
            "unknown type",
            Box::new(|a: &str| a.replacen("\"type\":\"", "\"type\":\"x", 1)),
        ),
        (
            "format",
            Box::new(|a: &str| a.replace("netmorph/1", "netmorph/9")),
        ),
        (
            "input scale",
            Box::new(|a: &str| a.replace("\"standard\"", "\"huge\"")),
        ),
    ];
    for (what, edit) in cases {
        let bad = with_metadata(&bytes, edit);
        let err = from_bytes::<f64>(&bad).unwrap_err();
        assert!(
            matches!(err, ModelFileError::Architecture { .. }),
            "{what}: {err}"
        );
    }
}

#[test]
fn the_input_scale_round_trips_and_old_files_are_standard() {
    use netmorph::data::InputScale;
    use netmorph::model_file::{load_scaled, save_scaled};
    let dir = std::env::temp_dir().join(format!("netmorph-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    for scale in [InputScale::Pixels, InputScale::Standard] {
        save_scaled(&sample(), scale, &path).unwrap();
        let (net, back): (Network<f64>, _) = load_scaled(&path).unwrap();
        assert_eq!((net, back), (sample(), scale));
    }
    // A file from before the field.
    let old = with_metadata(&to_bytes(&sample()).unwrap(), |a| {
        a.replace(",\"input_scale\":\"standard\"", "")
    });
    assert!(!String::from_utf8_lossy(&old).contains("input_scale"));
    std::fs::write(&path, old).unwrap();
    let (_, back): (Network<f64>, _) = load_scaled(&path).unwrap();
    assert_eq!(back, InputScale::Standard);
    std::fs::remove_dir_all(&dir).unwrap();
}
