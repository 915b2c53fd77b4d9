//! Training, checkpoints and resume.

use std::path::PathBuf;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rnn_data::{Corpus, CorpusOptions};
use rnn_engine::{
    Checkpoint, CheckpointError, Clip, Float, OptimizerConfig, Params, TrainConfig, TrainError,
    Trainer, backward, forward,
};

fn dinosaurs() -> Corpus {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/dinosaurs.txt");
    Corpus::from_path(path, CorpusOptions::lines()).unwrap()
}

fn small_text() -> Corpus {
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    Corpus::from_text("<fox>", &text, CorpusOptions::stream()).unwrap()
}

fn quiet() -> impl FnMut(&rnn_engine::Event<'_>) {
    |_| {}
}

fn short(config: TrainConfig, steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        eval_every: 50,
        sample_every: 0,
        ..config
    }
}

/// Training 2N steps straight, or N steps, a checkpoint round trip and N more, gives
/// bit-identical parameters, optimizer state and carried hidden state.
fn resume_is_bit_identical<F: Float>(config: TrainConfig, corpus: &Corpus) {
    let n = config.steps / 2;
    let mut straight = Trainer::<F>::new(config.clone(), corpus).unwrap();
    straight.run_to_end(&mut quiet()).unwrap();

    let mut first = Trainer::<F>::new(config, corpus).unwrap();
    first.run(n, &mut quiet()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    Checkpoint::new(first.state(), corpus.origin())
        .save(&path)
        .unwrap();
    drop(first);
    let loaded = Checkpoint::load(&path).unwrap();
    let mut resumed = Trainer::<F>::from_state(loaded.state_as::<F>(), corpus).unwrap();
    assert_eq!(resumed.step(), n);
    resumed.run_to_end(&mut quiet()).unwrap();

    let (a, b) = (straight.state(), resumed.state());
    assert_eq!(a.step, b.step);
    // Parameters, optimizer accumulators and the carried state.
    assert_eq!(a.model, b.model, "the model differs after resume");
    assert_eq!(a.smoothed_loss.to_bits(), b.smoothed_loss.to_bits());
}

#[test]
fn resume_lines_sgd_f64() {
    resume_is_bit_identical::<f64>(short(TrainConfig::dinosaurs(), 400), &dinosaurs());
}

#[test]
fn resume_lines_minibatch_adam_f32() {
    let config = TrainConfig {
        batch: 4,
        optimizer: OptimizerConfig::adam(0.01),
        dtype: rnn_engine::Dtype::F32,
        ..short(TrainConfig::dinosaurs(), 300)
    };
    resume_is_bit_identical::<f32>(config, &dinosaurs());
}

#[test]
fn resume_stream_adagrad_f64() {
    let config = TrainConfig {
        hidden: 16,
        batch: 3,
        seq_len: 10,
        optimizer: OptimizerConfig::adagrad(0.1),
        ..short(TrainConfig::min_char_rnn(), 100)
    };
    resume_is_bit_identical::<f64>(config, &small_text());
}

/// The classic recipe learns: the smoothed loss starts at 7 ln 27 ≈ 23.07 (an optimistic
/// guess: a real name has about 12 characters, so the true starting loss is near
/// 12 ln 27 ≈ 40 and the smoothed curve first rises towards it, as in the classic
/// assignment), then falls; the validation loss drops well below a uniform guess.
#[test]
fn dinosaurs_recipe_learns() {
    let corpus = dinosaurs();
    let mut trainer = Trainer::<f64>::new(short(TrainConfig::dinosaurs(), 3000), &corpus).unwrap();
    let start = trainer.state().smoothed_loss;
    assert!((start - 7.0 * 27f64.ln()).abs() < 1e-12);
    let mut evals = Vec::new();
    trainer
        .run_to_end(&mut |e| {
            if let rnn_engine::Event::Validation(v) = e {
                evals.push(v.loss.per_char());
            }
        })
        .unwrap();
    let history = trainer.history();
    let mid = history[history.len() / 2].smoothed_loss;
    let end = trainer.state().smoothed_loss;
    assert!(end < mid - 0.5, "smoothed loss {start} -> {mid} -> {end}");
    let (first, last) = (evals[0], *evals.last().unwrap());
    assert!(
        last < 27f64.ln() - 0.8,
        "validation loss per char {first} -> {last}"
    );
    assert!(
        last < first - 0.3,
        "validation loss per char {first} -> {last}"
    );
    assert_eq!(trainer.history().last().unwrap().step, 3000);
}

/// The validation pass inside a run sees the parameters of the step it follows, also when
/// the fused batch-1 step keeps W_aa and W_ya in its own aligned copy between steps: the
/// loss it reports at the last step is the loss of the parameters the run ends with, and
/// those are the ones a fresh run of the same length ends with.
#[test]
fn validation_inside_a_run_sees_the_current_parameters() {
    let corpus = dinosaurs();
    let config = TrainConfig {
        eval_every: 40,
        ..short(TrainConfig::dinosaurs(), 120)
    };
    let mut trainer = Trainer::<f64>::new(config.clone(), &corpus).unwrap();
    let mut evals = Vec::new();
    trainer
        .run_to_end(&mut |e| {
            if let rnn_engine::Event::Validation(v) = e {
                evals.push((v.step, v.loss));
            }
        })
        .unwrap();
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), [40, 80, 120]);
    let after = trainer.validate(120).unwrap();
    assert_eq!(evals[2].1, after.loss);
    // Stopping at 80 (in two runs of 40) gives the parameters the validation at 80 saw.
    let mut shorter = Trainer::<f64>::new(config, &corpus).unwrap();
    shorter.run(40, &mut quiet()).unwrap();
    shorter.run(40, &mut quiet()).unwrap();
    assert_eq!(shorter.validate(80).unwrap().loss, evals[1].1);
    assert_ne!(evals[1].1, evals[2].1);
}

/// Same seed, same samples; another seed, other samples.
#[test]
fn sampling_during_training_is_deterministic() {
    let corpus = dinosaurs();
    let run = |seed| {
        let config = TrainConfig {
            seed,
            sample_every: 100,
            ..short(TrainConfig::dinosaurs(), 200)
        };
        let mut t = Trainer::<f64>::new(config, &corpus).unwrap();
        let mut out = Vec::new();
        t.run_to_end(&mut |e| {
            if let rnn_engine::Event::Samples { samples, .. } = e {
                out.extend(samples.iter().cloned());
            }
        })
        .unwrap();
        out
    };
    let a = run(1);
    assert_eq!(a.len(), 14);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

/// One step of the trainer is exactly: forward from the zero state, backward, clip to
/// [−5, 5], θ ← θ − 0.01 g, on the first name of the epoch.
#[test]
fn one_sgd_step_matches_a_hand_computation() {
    let corpus = Corpus::from_text("<two>", "abc\nca\n", CorpusOptions::lines()).unwrap();
    let config = TrainConfig {
        hidden: 4,
        val_fraction: 0.0,
        steps: 1,
        ..short(TrainConfig::dinosaurs(), 1)
    };
    let mut t = Trainer::<f64>::new(config.clone(), &corpus).unwrap();
    let before = t.params().clone();
    let init: Params = Params::init(4, 4, 4, &mut ChaCha8Rng::seed_from_u64(config.seed));
    assert_eq!(before, init);
    t.run_to_end(&mut quiet()).unwrap();

    // Which name came first depends on the epoch's shuffle; the step must match one of
    // the two hand computations exactly, and not the other.
    let vocab = corpus.vocab();
    let step_on = |name: &str| {
        let ids = vocab.encode(name).unwrap();
        let x = Array2::from_shape_fn((ids.len() + 1, 1), |(t, _)| (t > 0).then(|| ids[t - 1]));
        let nl = vocab.newline_id().unwrap();
        let y = Array2::from_shape_fn((ids.len() + 1, 1), |(t, _)| {
            Some(if t < ids.len() { ids[t] } else { nl })
        });
        let (_, cache) = forward(&before, x.view(), y.view(), Array2::zeros((4, 1)).view());
        let (mut g, _) = backward(&before, x.view(), y.view(), &cache);
        Clip::Value(5.0).apply(&mut g);
        let mut p = before.clone();
        for ((_, p), (_, g)) in p.arrays_mut().into_iter().zip(g.arrays()) {
            *p -= &(g * 0.01);
        }
        p
    };
    let (abc, ca) = (step_on("abc"), step_on("ca"));
    assert_ne!(abc, ca);
    assert!(t.params() == &abc || t.params() == &ca);
}

/// A learning rate of 1e308 overflows the parameters: training stops with an error and keeps
/// the last finite ones, without clipping (the general update) and with element-wise
/// clipping (the classic recipe's fused clip-and-update pass).
#[test]
fn divergence_stops_and_keeps_the_last_good_parameters() {
    let corpus = dinosaurs();
    for clip in [Clip::None, Clip::Value(1e308)] {
        let config = TrainConfig {
            clip,
            optimizer: OptimizerConfig::sgd(1e308),
            ..short(TrainConfig::dinosaurs(), 50)
        };
        let mut t = Trainer::<f64>::new(config, &corpus).unwrap();
        let err = t.run_to_end(&mut quiet()).unwrap_err();
        assert!(
            matches!(err, TrainError::Diverged { .. }),
            "{clip:?}: {err}"
        );
        assert!(t.params().all_finite(), "{clip:?}");
        assert!(err.to_string().contains("diverged at step"));
    }
}

#[test]
fn bad_config_values_are_named() {
    let corpus = dinosaurs();
    for (config, field) in [
        (
            TrainConfig {
                hidden: 0,
                ..TrainConfig::dinosaurs()
            },
            "hidden",
        ),
        (
            TrainConfig {
                batch: 0,
                ..TrainConfig::dinosaurs()
            },
            "batch",
        ),
        // Values that would abort on allocation rather than fail cleanly.
        (
            TrainConfig {
                hidden: 1 << 20,
                ..TrainConfig::dinosaurs()
            },
            "hidden",
        ),
        (
            TrainConfig {
                batch: 1 << 40,
                ..TrainConfig::dinosaurs()
            },
            "batch",
        ),
        (
            TrainConfig {
                optimizer: OptimizerConfig::sgd(0.0),
                ..TrainConfig::dinosaurs()
            },
            "lr",
        ),
        (
            TrainConfig {
                clip: Clip::Norm(-1.0),
                ..TrainConfig::dinosaurs()
            },
            "clip",
        ),
    ] {
        let err = Trainer::<f64>::new(config, &corpus).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
}

fn saved_checkpoint(dir: &std::path::Path) -> (PathBuf, Checkpoint) {
    let corpus = dinosaurs();
    let mut t = Trainer::<f64>::new(short(TrainConfig::dinosaurs(), 20), &corpus).unwrap();
    t.run_to_end(&mut quiet()).unwrap();
    let ckpt = Checkpoint::new(t.state(), "dinosaurs");
    let path = dir.join("checkpoint.json");
    ckpt.save(&path).unwrap();
    (path, ckpt)
}

/// A save that fails part-way (here: the temporary file cannot be created) returns an
/// error and leaves the previous checkpoint loadable and unchanged.
#[test]
fn failed_save_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = saved_checkpoint(dir.path());
    // Block the temporary file's name with a directory.
    let tmp = dir
        .path()
        .join(format!(".checkpoint.json.tmp-{}", std::process::id()));
    std::fs::create_dir(&tmp).unwrap();
    let mut newer = old.clone();
    newer.state.step += 1;
    let err = newer.save(&path).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert_eq!(Checkpoint::load(&path).unwrap(), old);
}

/// Temporary files left by saves that were killed before their rename are removed by the
/// next successful save.
#[test]
fn a_successful_save_removes_stale_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".checkpoint.json.tmp-999999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let other = dir.path().join(".other.json.tmp-999999999");
    std::fs::write(&other, b"not ours").unwrap();
    let (path, ckpt) = saved_checkpoint(dir.path());
    assert!(!stale.exists());
    assert!(other.exists());
    assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ckpt) = saved_checkpoint(dir.path());
    let bytes = std::fs::read(&path).unwrap();

    // Truncated.
    let err = Checkpoint::from_bytes(&bytes[..bytes.len() / 2], &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checkpoint.json"));
    // Garbage.
    let err = Checkpoint::from_bytes(b"\x00\x01garbage", &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    // Another version.
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["format_version"] = 99.into();
    let err = Checkpoint::from_bytes(&serde_json::to_vec(&v).unwrap(), &path).unwrap_err();
    assert!(
        matches!(err, CheckpointError::Version { found: 99, .. }),
        "{err}"
    );
    // Parameters that disagree with the vocabulary.
    let mut bad = ckpt.clone();
    let rnn_engine::Model::Vanilla { params, .. } = &mut bad.state.model else {
        panic!("the dinosaur recipe trains one vanilla layer")
    };
    params.w_ya = Array2::zeros((5, 50));
    let err = Checkpoint::from_bytes(&serde_json::to_vec(&bad).unwrap(), &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Inconsistent { .. }), "{err}");
    assert!(err.to_string().contains("w_ya"), "{err}");
    // Missing file.
    let err = Checkpoint::load(&dir.path().join("nope.json")).unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");
}
