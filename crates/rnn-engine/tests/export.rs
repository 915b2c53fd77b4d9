//! Safetensors export and import with PyTorch's names.

use std::collections::HashMap;

use rnn_data::{Corpus, CorpusOptions};
use rnn_engine::export::{
    ImportError, Imported, METADATA_KEY, TENSOR_NAMES, from_safetensors, state_from_import,
    to_safetensors,
};
use rnn_engine::{Dtype, Params, TrainConfig, TrainState, Trainer};

/// The post's parameters of a state (the tests here train one vanilla layer).
fn vanilla(state: &TrainState) -> &Params {
    state.model.vanilla().expect("one vanilla layer")
}

/// The post's parameters of an import.
fn imported(params: Imported) -> Params {
    match params {
        Imported::Vanilla(p) => p,
        Imported::Deep(_) => panic!("expected one vanilla layer"),
    }
}
use safetensors::tensor::{Dtype as StDtype, TensorView};

fn trained_state(dtype: Dtype) -> rnn_engine::TrainState<f64> {
    let text = "anchisaurus\nbrachiosaurus\ncamptosaurus\ndiplodocus\n".repeat(5);
    let corpus = Corpus::from_text("<names>", &text, CorpusOptions::lines()).unwrap();
    let config = TrainConfig {
        hidden: 8,
        steps: 30,
        val_fraction: 0.0,
        sample_every: 0,
        dtype,
        ..TrainConfig::dinosaurs()
    };
    match dtype {
        Dtype::F64 => {
            let mut t = Trainer::<f64>::new(config, &corpus).unwrap();
            t.run_to_end(&mut |_| {}).unwrap();
            t.into_state()
        }
        Dtype::F32 => {
            let mut t = Trainer::<f32>::new(config, &corpus).unwrap();
            t.run_to_end(&mut |_| {}).unwrap();
            t.into_state().cast()
        }
    }
}

#[test]
fn export_import_export_is_byte_identical() {
    for dtype in [Dtype::F64, Dtype::F32] {
        let state = trained_state(dtype);
        let first = to_safetensors(&state, dtype);
        let (params, info) = from_safetensors(&first).unwrap();
        assert_eq!(info.dtype, dtype);
        assert_eq!(info.vocab, state.vocab);
        assert_eq!(
            imported(params.clone()),
            *vanilla(&state),
            "{dtype}: weights change on import"
        );
        let again = to_safetensors(&state_from_import(params, &info), info.dtype);
        assert_eq!(first, again, "{dtype}: second export differs");
    }
}

#[test]
fn tensors_carry_pytorch_names_shapes_and_dtype() {
    let state = trained_state(Dtype::F32);
    let bytes = to_safetensors(&state, Dtype::F32);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (n_a, v) = (8, state.vocab.len());
    let shapes: [&[usize]; 6] = [&[n_a, v], &[n_a, n_a], &[n_a], &[n_a], &[v, n_a], &[v]];
    for (name, shape) in TENSOR_NAMES.into_iter().zip(shapes) {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.shape(), shape, "{name}");
        assert_eq!(t.dtype(), StDtype::F32, "{name}");
    }
    // W_ax row 1, column 2 is at offset (1·V + 2)·4 in row-major order.
    let w = st.tensor("rnn.weight_ih_l0").unwrap();
    let off = (v + 2) * 4;
    let value = f32::from_le_bytes(w.data()[off..off + 4].try_into().unwrap());
    assert_eq!(f64::from(value), vanilla(&state).w_ax[[1, 2]]);
    // bias_hh is zero: PyTorch adds it to bias_ih.
    assert!(
        st.tensor("rnn.bias_hh_l0")
            .unwrap()
            .data()
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn pytorch_biases_are_summed_on_import() {
    let state = trained_state(Dtype::F64);
    let bytes = to_safetensors(&state, Dtype::F64);
    // Rewrite the file with bias_hh = 1 everywhere.
    let tensors = read_all(&bytes);
    let patched = rewrite(&bytes, &tensors, |name, shape, data| {
        if name == "rnn.bias_hh_l0" {
            (
                shape.to_vec(),
                StDtype::F64,
                1.0f64.to_le_bytes().repeat(shape[0]),
            )
        } else {
            (shape.to_vec(), StDtype::F64, data.to_vec())
        }
    });
    let (params, _) = from_safetensors(&patched).unwrap();
    let params = imported(params);
    for (got, want) in params.b_a.iter().zip(vanilla(&state).b_a.iter()) {
        assert_eq!(*got, want + 1.0);
    }
}

type Tensors = Vec<(String, Vec<usize>, Vec<u8>)>;

fn read_all(bytes: &[u8]) -> Tensors {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect()
}

fn metadata(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    meta.metadata().clone()
}

fn rewrite(
    bytes: &[u8],
    tensors: &Tensors,
    mut f: impl FnMut(&str, &[usize], &[u8]) -> (Vec<usize>, StDtype, Vec<u8>),
) -> Vec<u8> {
    let changed: Vec<(String, Vec<usize>, StDtype, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let (s, t, d) = f(n, s, d);
            (n.clone(), s, t, d)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = changed
        .iter()
        .map(|(n, s, t, d)| (n.clone(), TensorView::new(*t, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize(views, metadata(bytes)).unwrap()
}

#[test]
fn bad_files_are_clear_errors() {
    let state = trained_state(Dtype::F64);
    let bytes = to_safetensors(&state, Dtype::F64);
    let tensors = read_all(&bytes);

    // Garbage and truncation.
    let err = from_safetensors(b"definitely not safetensors").unwrap_err();
    assert!(matches!(err, ImportError::Format(_)), "{err}");
    let err = from_safetensors(&bytes[..bytes.len() - 10]).unwrap_err();
    assert!(matches!(err, ImportError::Format(_)), "{err}");

    // A missing tensor.
    let without: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .filter(|(n, _, _)| n != "fc.bias")
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(StDtype::F64, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let missing = safetensors::serialize(without, metadata(&bytes)).unwrap();
    let err = from_safetensors(&missing).unwrap_err();
    assert!(err.to_string().contains("fc.bias"), "{err}");

    // A wrong shape: fc.weight transposed.
    let transposed = rewrite(&bytes, &tensors, |name, shape, data| {
        let shape = if name == "fc.weight" {
            vec![shape[1], shape[0]]
        } else {
            shape.to_vec()
        };
        (shape, StDtype::F64, data.to_vec())
    });
    let err = from_safetensors(&transposed).unwrap_err();
    assert!(
        matches!(
            err,
            ImportError::Shape { ref name, .. } if name == "fc.weight"
        ),
        "{err}"
    );

    // A dtype it cannot use: 64-bit integers of the same byte length.
    let ints = rewrite(&bytes, &tensors, |_, shape, data| {
        (shape.to_vec(), StDtype::I64, data.to_vec())
    });
    let err = from_safetensors(&ints).unwrap_err();
    assert!(matches!(err, ImportError::Dtype { .. }), "{err}");
    assert!(err.to_string().contains("I64"), "{err}");

    // No metadata: the vocabulary is unknown.
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(StDtype::F64, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let bare = safetensors::serialize(views, None).unwrap();
    let err = from_safetensors(&bare).unwrap_err();
    assert!(matches!(err, ImportError::Metadata(_)), "{err}");
    assert!(metadata(&bytes).unwrap().contains_key(METADATA_KEY));
}

#[test]
fn imported_weights_predict_the_same() {
    let state = trained_state(Dtype::F64);
    let (params, _) = from_safetensors(&to_safetensors(&state, Dtype::F64)).unwrap();
    let params = imported(params);
    let x = ndarray::array![[None], [Some(1)], [Some(2)]];
    let y = ndarray::array![[Some(1)], [Some(2)], [Some(0)]];
    let a0 = ndarray::Array2::zeros((8, 1));
    let (l1, _) = rnn_engine::forward(vanilla(&state), x.view(), y.view(), a0.view());
    let (l2, _) = rnn_engine::forward(&params, x.view(), y.view(), a0.view());
    assert_eq!(l1, l2);
}

/// `bytes` with the "rnn" metadata's configuration changed by `f`.
fn with_config(bytes: &[u8], f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut meta = metadata(bytes).unwrap();
    let mut info: serde_json::Value = serde_json::from_str(&meta[METADATA_KEY]).unwrap();
    f(&mut info["config"]);
    meta.insert(METADATA_KEY.to_string(), info.to_string());
    let tensors = read_all(bytes);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(StDtype::F64, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn a_configuration_that_cannot_train_is_refused() {
    // Regression: a batch of 10^15 made `state_from_import` abort allocating the carried
    // hidden state (n_a, batch); a batch of 0 imported into a checkpoint that then failed
    // to load.
    let state = trained_state(Dtype::F64);
    let bytes = to_safetensors(&state, Dtype::F64);
    for (batch, expected) in [
        (1_000_000_000_000_000u64, "between 1 and 65536"),
        (0, "invalid batch = 0"),
    ] {
        let bad = with_config(&bytes, |c| c["batch"] = batch.into());
        let err = from_safetensors(&bad).unwrap_err();
        assert!(matches!(err, ImportError::Config(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
    let bad = with_config(&bytes, |c| c["optimizer"]["lr"] = (-1.0).into());
    assert!(matches!(
        from_safetensors(&bad),
        Err(ImportError::Config(_))
    ));
    // The largest accepted batch imports into a checkpoint that loads.
    let ok = with_config(&bytes, |c| {
        c["batch"] = rnn_engine::export::MAX_IMPORT_BATCH.into()
    });
    let (params, info) = from_safetensors(&ok).unwrap();
    let state = state_from_import(params, &info);
    let ckpt = rnn_engine::Checkpoint::new(&state, "<test>");
    let json = serde_json::to_vec(&ckpt).unwrap();
    rnn_engine::Checkpoint::from_bytes(&json, std::path::Path::new("<test>")).unwrap();
}

#[test]
fn values_a_checkpoint_cannot_store_are_refused() {
    // Regression: a NaN weight imported into a checkpoint that then failed to load (JSON
    // has no NaN), and so would two f32 biases whose sum overflows f32.
    for dtype in [Dtype::F64, Dtype::F32] {
        let state = trained_state(dtype);
        let bytes = to_safetensors(&state, dtype);
        let tensors = read_all(&bytes);
        let st_dtype = match dtype {
            Dtype::F64 => StDtype::F64,
            Dtype::F32 => StDtype::F32,
        };
        let nan = rewrite(&bytes, &tensors, |name, shape, data| {
            let mut data = data.to_vec();
            if name == "fc.weight" {
                let bits: Vec<u8> = match dtype {
                    Dtype::F64 => f64::NAN.to_le_bytes().to_vec(),
                    Dtype::F32 => f32::NAN.to_le_bytes().to_vec(),
                };
                data[..bits.len()].copy_from_slice(&bits);
            }
            (shape.to_vec(), st_dtype, data)
        });
        let err = from_safetensors(&nan).unwrap_err();
        assert!(
            matches!(err, ImportError::NonFinite(ref n) if n == "fc.weight"),
            "{err}"
        );
    }
    let state = trained_state(Dtype::F32);
    let bytes = to_safetensors(&state, Dtype::F32);
    let tensors = read_all(&bytes);
    let big = rewrite(&bytes, &tensors, |name, shape, data| {
        let data = if name.starts_with("rnn.bias") {
            f32::MAX.to_le_bytes().repeat(shape[0])
        } else {
            data.to_vec()
        };
        (shape.to_vec(), StDtype::F32, data)
    });
    let err = from_safetensors(&big).unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
}
