//! `charrnn plot gates` and `charrnn plot gradients --compare` on tiny models of every cell
//! trained on the same text: the pictures are written where the output policy says, are
//! valid PNG or SVG and name what they show; bad flags are one-line errors.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

mod common;
use common::{charrnn, fails_cleanly, succeeds};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const TEXT: &str = "the quick brown fox jumps over the lazy dog. the dog sleeps.\n";

/// Trains `cell` with `layers` layers for a few steps on text.txt, into `dir/name`.
fn train(dir: &Path, name: &str, cell: &str, layers: &str) {
    let out = charrnn(dir)
        .args(["train", "--data", "text.txt", "--mode", "stream"])
        .args(["--preset", "text", "--cell", cell, "--layers", layers])
        .args(["--hidden", "8", "--batch", "2", "--seq-len", "12"])
        .args(["--steps", "12", "--sample-every", "0", "--out", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `charrnn plot ARGS` and returns its stdout.
fn plot(dir: &Path, args: &[&str]) -> String {
    let all: Vec<&str> = std::iter::once("plot")
        .chain(args.iter().copied())
        .collect();
    succeeds(dir, &all)
}

fn svg_text(path: &Path) -> String {
    let svg = fs::read_to_string(path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}: not an SVG document",
        path.display()
    );
    svg
}

fn setup() -> TempDir {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("text.txt"), TEXT.repeat(10)).unwrap();
    train(dir, "rnn", "rnn", "1");
    train(dir, "gru", "gru", "1");
    train(dir, "lstm", "lstm", "2");
    tmp
}

#[test]
fn gates_and_compared_gradients_of_every_cell() {
    let tmp = setup();
    let dir = tmp.path();

    // Gates: the default file in the run directory, PNG; and SVG on request.
    let panels: [(&str, &[&str]); 3] = [
        ("rnn", &["a⟨t⟩: hidden state"]),
        (
            "gru",
            &["r: reset gate", "z: update gate", "n: candidate state"],
        ),
        (
            "lstm",
            &[
                "i: input gate",
                "f: forget gate",
                "g: candidate cell",
                "o: output gate",
                "c: cell state",
            ],
        ),
    ];
    for (run, names) in panels {
        let stdout = plot(dir, &["gates", "--checkpoint", run, "--text", "the dog"]);
        assert!(
            stdout.contains(&format!("wrote {run}/gates.png")),
            "{stdout}"
        );
        let png = fs::read(dir.join(run).join("gates.png")).unwrap();
        assert!(png.starts_with(PNG_MAGIC), "{run}");
        let out = format!("{run}-gates.svg");
        plot(
            dir,
            &[
                "gates",
                "--checkpoint",
                run,
                "--text",
                "the dog",
                "--out",
                &out,
            ],
        );
        let svg = svg_text(&dir.join(&out));
        for name in names {
            let escaped = name.replace('<', "&lt;").replace('>', "&gt;");
            assert!(svg.contains(&escaped), "{run}: no panel {name:?}");
        }
        assert!(svg.contains(&run.to_uppercase()), "{run}: title");
    }
    // The top layer by default; the bottom one on request.
    let top = svg_text(&dir.join("lstm-gates.svg"));
    assert!(top.contains("layer 1, the top of 2"), "lstm title");
    plot(
        dir,
        &[
            "gates",
            "--checkpoint",
            "lstm",
            "--text",
            "the dog",
            "--layer",
            "0",
            "--out",
            "lstm-0.svg",
        ],
    );
    let bottom = svg_text(&dir.join("lstm-0.svg"));
    assert!(bottom.contains("layer 0 of 0..1") && bottom != top);

    // The payoff plot: one command, one curve per model, in the run directory by default.
    let stdout = plot(
        dir,
        &[
            "gradients",
            "--checkpoint",
            "rnn",
            "--compare",
            "gru,lstm/checkpoint.json",
            "--text",
            "the quick brown fox jumps",
        ],
    );
    assert!(stdout.contains("wrote rnn/gradients.png"), "{stdout}");
    assert!(
        fs::read(dir.join("rnn/gradients.png"))
            .unwrap()
            .starts_with(PNG_MAGIC)
    );
    for label in [
        "rnn, n_a 8: rnn",
        "gru, n_a 8: gru",
        "lstm × 2 layers, n_a 8: lstm",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no numbers for {label:?} in {stdout}"));
        // "the quick brown fox jumps": 24 inputs in stream mode.
        assert!(
            line.contains("at t = T = 24") && line.contains("t = 1: "),
            "{line}"
        );
    }
    plot(
        dir,
        &[
            "gradients",
            "--checkpoint",
            "rnn",
            "--compare",
            "gru,lstm",
            "--text",
            "the quick brown fox jumps",
            "--out",
            "cells.svg",
        ],
    );
    let svg = svg_text(&dir.join("cells.svg"));
    for text in [
        "rnn, n_a 8: rnn",
        "gru, n_a 8: gru",
        "lstm × 2 layers",
        "top layer",
    ] {
        assert!(svg.contains(text), "cells.svg lacks {text:?}");
    }
    assert!(
        !svg.contains("ρ(W_aa)"),
        "random W_aa curves drawn with --compare"
    );

    // A stack alone: its own curve, and the legend says why there is no other.
    let stdout = plot(
        dir,
        &[
            "gradients",
            "--checkpoint",
            "gru",
            "--text",
            "the dog",
            "--out",
            "gru.svg",
        ],
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let svg = svg_text(&dir.join("gru.svg"));
    assert!(svg.contains("trained gru, n_a 8 (ρ(W_aa) curves: vanilla only)"));
    // The post's model alone keeps its random-W_aa comparison.
    let stdout = plot(
        dir,
        &["gradients", "--checkpoint", "rnn", "--text", "the dog"],
    );
    assert!(
        stdout.contains("ρ(W_aa) = 1.5: ") && stdout.contains("trained W_aa: "),
        "{stdout}"
    );
}

#[test]
fn bad_layers_radii_and_comparisons_are_one_line_errors() {
    let tmp = setup();
    let dir = tmp.path();
    let gates = |run: &str, layer: &str| {
        fails_cleanly(
            dir,
            &[
                "plot",
                "gates",
                "--checkpoint",
                run,
                "--text",
                "dog",
                "--layer",
                layer,
            ],
        )
    };
    let err = gates("lstm", "2");
    assert!(
        err.contains("--layer 2") && err.contains("numbered 0 to 1"),
        "{err}"
    );
    let err = gates("rnn", "1");
    assert!(
        err.contains("--layer 1") && err.contains("1 layer(s)"),
        "{err}"
    );
    let err = fails_cleanly(
        dir,
        &["plot", "gates", "--checkpoint", "gru", "--text", "dog#"],
    );
    assert!(err.contains("--text \"dog#\""), "{err}");

    let err = fails_cleanly(
        dir,
        &[
            "plot",
            "gradients",
            "--checkpoint",
            "gru",
            "--radius",
            "0.5",
        ],
    );
    assert!(
        err.contains("--radius") && err.contains("1 layer(s) of gru"),
        "{err}"
    );
    let err = fails_cleanly(
        dir,
        &[
            "plot",
            "gradients",
            "--checkpoint",
            "rnn",
            "--compare",
            "nowhere",
        ],
    );
    assert!(err.contains("--compare nowhere"), "{err}");
    fs::write(dir.join("other.txt"), "XYZ ZYX YXZ\n".repeat(20)).unwrap();
    let out = charrnn(dir)
        .args([
            "train",
            "--data",
            "other.txt",
            "--mode",
            "stream",
            "--preset",
            "text",
        ])
        .args([
            "--hidden",
            "4",
            "--batch",
            "1",
            "--seq-len",
            "4",
            "--steps",
            "2",
        ])
        .args(["--sample-every", "0", "--out", "other"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = fails_cleanly(
        dir,
        &[
            "plot",
            "gradients",
            "--checkpoint",
            "rnn",
            "--compare",
            "other",
            "--text",
            "the dog",
        ],
    );
    assert!(
        err.contains("--compare other") && err.contains("vocabulary"),
        "{err}"
    );
    // A compared checkpoint is an input: never replaced by the picture, even through a link.
    std::os::unix::fs::symlink("gru/checkpoint.json", dir.join("g.svg")).unwrap();
    let err = fails_cleanly(
        dir,
        &[
            "plot",
            "gradients",
            "--checkpoint",
            "rnn",
            "--compare",
            "gru",
            "--text",
            "the dog",
            "--out",
            "g.svg",
            "--force",
        ],
    );
    assert!(err.contains("this command's input (--compare"), "{err}");
    assert!(
        !dir.join("rnn/gradients.png").exists(),
        "a failed plot wrote a file"
    );
}
