//! Training stacks of any cell: resuming bit for bit (dropout masks included), checkpoints
//! of either kind, and safetensors for every cell and depth.

use std::path::Path;

use rnn::CellKind;
use rnn_data::{Corpus, CorpusOptions};
use rnn_engine::export::{Imported, from_safetensors, state_from_import, to_safetensors};
use rnn_engine::{
    Checkpoint, Dtype, Float, Model, OptimizerConfig, TrainConfig, TrainError, Trainer,
};

fn text_corpus() -> Corpus {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(30);
    Corpus::from_text("<text>", &text, CorpusOptions::stream()).unwrap()
}

fn names_corpus() -> Corpus {
    let text = "anchisaurus\nbrachiosaurus\ncamptosaurus\ndiplodocus\nstegosaurus\n".repeat(8);
    Corpus::from_text("<names>", &text, CorpusOptions::lines()).unwrap()
}

fn deep_config(cell: CellKind, layers: usize, dropout: f64, steps: u64) -> TrainConfig {
    TrainConfig {
        hidden: 12,
        cell,
        layers,
        dropout,
        batch: 4,
        seq_len: 16,
        steps,
        eval_every: 7,
        sample_every: 9,
        n_samples: 1,
        ..TrainConfig::text()
    }
}

fn quiet() -> impl FnMut(&rnn_engine::Event<'_>) {
    |_| {}
}

/// Straight through, or stopped at `n`, saved, loaded and resumed: the same bits.
fn resumes_bit_for_bit<F: Float>(config: TrainConfig, corpus: &Corpus, n: u64) {
    let config = TrainConfig {
        dtype: if F::NAME == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        },
        ..config
    };
    let mut straight = Trainer::<F>::new(config.clone(), corpus).unwrap();
    straight.run_to_end(&mut quiet()).unwrap();

    let mut first = Trainer::<F>::new(config, corpus).unwrap();
    first.run(n, &mut quiet()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    Checkpoint::new(first.state(), "<text>")
        .save(&path)
        .unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    let mut resumed = Trainer::<F>::from_state(loaded.state_as::<F>(), corpus).unwrap();
    resumed.run_to_end(&mut quiet()).unwrap();
    let (a, b) = (straight.state(), resumed.state());
    assert_eq!(a.step, b.step);
    assert_eq!(a.model, b.model, "{:?}: the model differs", a.config.cell);
    assert_eq!(a.smoothed_loss.to_bits(), b.smoothed_loss.to_bits());
    assert_eq!(a.sample_rng, b.sample_rng);
}

#[test]
fn every_cell_stacked_with_dropout_resumes_bit_for_bit() {
    let corpus = text_corpus();
    for cell in CellKind::ALL {
        resumes_bit_for_bit::<f32>(deep_config(cell, 2, 0.25, 24), &corpus, 10);
    }
    resumes_bit_for_bit::<f64>(deep_config(CellKind::Lstm, 3, 0.1, 12), &corpus, 5);
    // Names, each from a zero state.
    let names = TrainConfig {
        hidden: 10,
        cell: CellKind::Gru,
        layers: 2,
        dropout: 0.2,
        batch: 3,
        steps: 20,
        optimizer: OptimizerConfig::adam(0.01),
        ..TrainConfig::dinosaurs()
    };
    resumes_bit_for_bit::<f64>(names, &names_corpus(), 7);
}

#[test]
fn stacks_learn() {
    // The loss per character falls well below a uniform guess's on a repetitive text.
    let corpus = text_corpus();
    for cell in [CellKind::Gru, CellKind::Lstm] {
        let config = TrainConfig {
            optimizer: OptimizerConfig::adam(0.02),
            eval_every: 0,
            sample_every: 0,
            val_fraction: 0.0,
            ..deep_config(cell, 2, 0.0, 150)
        };
        let mut t = Trainer::<f32>::new(config, &corpus).unwrap();
        let ids = t.vocab().encode(corpus.text()).unwrap();
        let before = t.model().evaluate_stream(&ids, 16).per_char();
        t.run_to_end(&mut quiet()).unwrap();
        let after = t.model().evaluate_stream(&ids, 16).per_char();
        let uniform = (t.vocab().len() as f64).ln();
        assert!(
            (before - uniform).abs() < 0.2,
            "{cell:?}: {before} vs {uniform}"
        );
        assert!(after < 0.5 * uniform, "{cell:?}: {before} -> {after}");
    }
}

#[test]
fn dropout_changes_training_and_zero_dropout_is_no_dropout() {
    let corpus = text_corpus();
    let run = |dropout: f64| {
        let mut t =
            Trainer::<f64>::new(deep_config(CellKind::Lstm, 2, dropout, 5), &corpus).unwrap();
        t.run_to_end(&mut quiet()).unwrap();
        t.into_state().model
    };
    assert_ne!(run(0.3), run(0.0));
    assert_eq!(run(0.3), run(0.3));
}

#[test]
fn bad_depth_and_dropout_are_named() {
    let corpus = text_corpus();
    for (config, field) in [
        (deep_config(CellKind::Gru, 0, 0.0, 5), "layers"),
        (deep_config(CellKind::Gru, 9, 0.0, 5), "layers"),
        (deep_config(CellKind::Gru, 2, 1.0, 5), "dropout"),
        (deep_config(CellKind::Gru, 2, -0.1, 5), "dropout"),
        (deep_config(CellKind::Gru, 1, 0.5, 5), "dropout"),
    ] {
        match Trainer::<f32>::new(config, &corpus) {
            Err(TrainError::Config(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_checkpoint_from_before_the_gated_cells_still_loads() {
    // The vanilla fields stay where they were; the old history array is ignored.
    let mut t = Trainer::<f64>::new(
        TrainConfig {
            hidden: 6,
            steps: 20,
            ..TrainConfig::dinosaurs()
        },
        &names_corpus(),
    )
    .unwrap();
    t.run_to_end(&mut quiet()).unwrap();
    let ckpt = Checkpoint::new(t.state(), "<names>");
    let mut old: serde_json::Value = serde_json::to_value(&ckpt).unwrap();
    let state = old["state"].as_object_mut().unwrap();
    state.remove("summary");
    let config = state["config"].as_object_mut().unwrap();
    for key in ["cell", "layers", "dropout"] {
        config.remove(key).unwrap();
    }
    state.insert(
        "history".into(),
        serde_json::json!([{"step": 10, "loss": 20.0, "smoothed_loss": 22.0,
                            "val_loss": null, "grad_norm": 1.0, "chars_per_s": 5.0}]),
    );
    let bytes = serde_json::to_vec(&old).unwrap();
    let loaded = Checkpoint::from_bytes(&bytes, Path::new("old.json")).unwrap();
    assert_eq!(loaded.state.model, ckpt.state.model);
    assert_eq!(loaded.state.config, ckpt.state.config);
    assert!(matches!(loaded.state.model, Model::Vanilla { .. }));
}

#[test]
fn a_checkpoint_whose_model_disagrees_with_its_configuration_is_refused() {
    let corpus = text_corpus();
    let mut t = Trainer::<f32>::new(deep_config(CellKind::Lstm, 2, 0.0, 3), &corpus).unwrap();
    t.run_to_end(&mut quiet()).unwrap();
    let ckpt = Checkpoint::new(t.state(), "<text>");
    let value = serde_json::to_value(&ckpt).unwrap();
    for (path, new, expected) in [
        (
            &["config", "cell"][..],
            serde_json::json!("gru"),
            "cell lstm in the parameters",
        ),
        (
            &["config", "layers"],
            serde_json::json!(3),
            "2 layers in the parameters",
        ),
        (&["config", "hidden"], serde_json::json!(13), "has shape"),
        (&["config", "batch"], serde_json::json!(5), "carried state"),
    ] {
        let mut v = value.clone();
        let mut slot = &mut v["state"];
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = new;
        let err = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), Path::new("c.json"))
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{path:?}: {err}");
    }
    // Neither a vanilla model nor a stack.
    let mut v = value.clone();
    v["state"].as_object_mut().unwrap().remove("deep");
    let err =
        Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), Path::new("c.json")).unwrap_err();
    assert!(err.to_string().contains("either"), "{err}");
}

#[test]
fn stacks_export_with_pytorch_names_and_import_the_same() {
    let corpus = text_corpus();
    for cell in CellKind::ALL {
        for layers in [1, 2] {
            let mut t = Trainer::<f32>::new(deep_config(cell, layers, 0.0, 3), &corpus).unwrap();
            t.run_to_end(&mut quiet()).unwrap();
            let state = t.into_state().cast::<f64>();
            let bytes = to_safetensors(&state, Dtype::F32);
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let (g, n_a, v) = (cell.n_gates(), 12, state.vocab.len());
            for k in 0..layers {
                let n_in = if k == 0 { v } else { n_a };
                let shape = |name: &str| {
                    st.tensor(&format!("rnn.{name}_l{k}"))
                        .unwrap()
                        .shape()
                        .to_vec()
                };
                assert_eq!(shape("weight_ih"), [g * n_a, n_in]);
                assert_eq!(shape("weight_hh"), [g * n_a, n_a]);
                assert_eq!(shape("bias_ih"), [g * n_a]);
                assert_eq!(shape("bias_hh"), [g * n_a]);
            }
            assert!(st.tensor(&format!("rnn.weight_ih_l{layers}")).is_err());
            assert_eq!(st.tensor("fc.weight").unwrap().shape(), [v, n_a]);
            let (params, info) = from_safetensors(&bytes).unwrap();
            match (&params, &state.model) {
                (Imported::Vanilla(p), Model::Vanilla { params: q, .. }) => assert_eq!(p, q),
                (Imported::Deep(p), Model::Deep(d)) => assert_eq!(*p, d.params),
                _ => panic!("{cell:?} x {layers}: the import changed the kind of model"),
            }
            // Export, import, export: the same bytes.
            let again = to_safetensors(&state_from_import(params, &info), info.dtype);
            assert_eq!(bytes, again, "{cell:?} x {layers}");
        }
    }
}

#[test]
fn a_stack_without_configuration_is_recognised_from_its_tensors() {
    let corpus = text_corpus();
    let mut t = Trainer::<f64>::new(deep_config(CellKind::Gru, 3, 0.0, 2), &corpus).unwrap();
    t.run_to_end(&mut quiet()).unwrap();
    let mut state = t.into_state();
    let bytes = to_safetensors(&state, Dtype::F64);
    // Drop the configuration from the metadata, as weights saved from PyTorch would.
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut info: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["rnn"]).unwrap();
    info["config"] = serde_json::Value::Null;
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().collect();
    let meta = std::collections::HashMap::from([("rnn".to_string(), info.to_string())]);
    let bare = safetensors::serialize(views, Some(meta)).unwrap();
    let (params, _) = from_safetensors(&bare).unwrap();
    let Imported::Deep(p) = params else {
        panic!("a three-layer GRU is a stack")
    };
    assert_eq!((p.cell, p.layers.len()), (CellKind::Gru, 3));
    let Model::Deep(d) = &mut state.model else {
        unreachable!()
    };
    assert_eq!(p, d.params);
}

/// A schedule sets every update's rate (read back from the optimizer the step used), for
/// the post's model and for a stack; the best validation loss is kept with its step.
#[test]
fn the_schedule_sets_each_updates_rate() {
    use rnn_engine::Schedule;
    let corpus = text_corpus();
    for (cell, layers) in [(CellKind::Rnn, 1), (CellKind::Gru, 2)] {
        let schedule = Schedule::cosine(3, 0.1);
        let config = TrainConfig {
            schedule,
            optimizer: OptimizerConfig::adamw(0.01, 0.1),
            eval_every: 2,
            ..deep_config(cell, layers, 0.0, 10)
        };
        let mut t = Trainer::<f64>::new(config.clone(), &corpus).unwrap();
        for step in 1..=10 {
            t.run(1, &mut quiet()).unwrap();
            let used = match t.model() {
                Model::Vanilla { optimizer, .. } => optimizer.config,
                Model::Deep(d) => d.optimizer.config,
            };
            let want = 0.01 * schedule.factor(step, 10);
            assert!((used.lr() - want).abs() < 1e-15, "{cell:?} step {step}");
            assert_eq!(used.weight_decay(), 0.1);
        }
        // A constant rate trains differently from the first step on (warm-up starts low).
        let mut constant = Trainer::<f64>::new(
            TrainConfig {
                schedule: Schedule::CONSTANT,
                ..config
            },
            &corpus,
        )
        .unwrap();
        constant.run(10, &mut quiet()).unwrap();
        assert_ne!(constant.model(), t.model());
        let (step, best) = t.state().summary.best_val.unwrap();
        assert!(step % 2 == 0 && best.is_finite());
    }
}

/// `reset_state` starts every name of the post's model from a zero state: the first step
/// is the same as carrying (both start from zero), the second differs.
#[test]
fn reset_state_starts_every_name_from_zero() {
    let corpus = names_corpus();
    let config = TrainConfig {
        batch: 3,
        eval_every: 0,
        sample_every: 0,
        ..TrainConfig::dinosaurs()
    };
    let reset = TrainConfig {
        reset_state: true,
        ..config.clone()
    };
    let mut carry = Trainer::<f64>::new(config, &corpus).unwrap();
    let mut fresh = Trainer::<f64>::new(reset, &corpus).unwrap();
    carry.run(1, &mut quiet()).unwrap();
    fresh.run(1, &mut quiet()).unwrap();
    assert_eq!(carry.params(), fresh.params());
    carry.run(1, &mut quiet()).unwrap();
    fresh.run(1, &mut quiet()).unwrap();
    assert_ne!(carry.params(), fresh.params());
}
