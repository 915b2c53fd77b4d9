//! The numbers and names the book's prose quotes, computed from the outputs `cargo xtask
//! figures` has just written, one small file each under `book/src/generated/facts/`.
//!
//! A chapter quotes a fact with an inline `{{#include generated/facts/NAME.txt}}`, so a
//! sentence such as "7 of the 10 end in -saurus" is rewritten whenever the samples change,
//! instead of going stale. `tests/tests/book.rs` recomputes the sample facts from
//! `samples.txt` and fails when the two disagree or when a fact is never quoted.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

/// The texts the facts are computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// `data/dinosaurs.txt`.
    pub dinosaurs: &'a str,
    /// The dinosaur run's `history.csv`.
    pub history: &'a str,
    /// `generated/training.txt`: the three runs' final losses.
    pub training: &'a str,
    /// `generated/gradients.txt`: what `charrnn plot gradients --radius` printed.
    pub gradients: &'a str,
    /// `generated/gradients-cells.txt`: what `charrnn plot gradients --compare` printed.
    pub gradients_cells: &'a str,
    /// `generated/gradients-09.txt`: the same for radii 0.9, 1 and 1.1.
    pub gradients_near_one: &'a str,
    /// `generated/samples.txt`.
    pub samples: &'a str,
}

/// Every fact, by name.
pub fn all(inputs: &Inputs<'_>) -> Result<BTreeMap<String, String>> {
    let mut facts = BTreeMap::new();
    data_facts(inputs.dinosaurs, &mut facts);
    history_facts(inputs.history, &mut facts)?;
    training_facts(inputs.training, &mut facts)?;
    gradient_facts(inputs.gradients, inputs.gradients_cells, &mut facts)?;
    near_one_facts(inputs.gradients_near_one, &mut facts)?;
    sample_facts(inputs.samples, inputs.dinosaurs, &mut facts)?;
    Ok(facts)
}

/// The natural log of the dinosaur vocabulary's size: an untrained model's loss per
/// character.
const LN_27: f64 = 3.295_836_866_004_329;

fn data_facts(dinosaurs: &str, facts: &mut BTreeMap<String, String>) {
    let names: Vec<&str> = dinosaurs.lines().filter(|l| !l.is_empty()).collect();
    let letters: usize = names.iter().map(|n| n.chars().count()).sum();
    let mean = letters as f64 / names.len().max(1) as f64;
    facts.insert("data-names".into(), names.len().to_string());
    facts.insert("data-mean-letters".into(), format!("{mean:.1}"));
    facts.insert("data-mean-steps".into(), format!("{:.1}", mean + 1.0));
    facts.insert(
        "data-untrained-loss".into(),
        format!("{:.0}", (mean + 1.0) * LN_27),
    );
}

/// The first steps' mean loss and the last smoothed loss of the dinosaur run.
fn history_facts(history: &str, facts: &mut BTreeMap<String, String>) -> Result<()> {
    let mut lines = history.lines();
    let header: Vec<&str> = lines
        .next()
        .context("history.csv is empty")?
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("history.csv has no column {name}"))
    };
    let (step, loss, smoothed) = (col("step")?, col("loss")?, col("smoothed_loss")?);
    let mut first = Vec::new();
    let mut last_smoothed = None;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let num = |i: usize| -> Result<f64> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("history.csv: bad line {line:?}"))
        };
        if num(step)? <= 200.0 {
            first.push(num(loss)?);
        }
        last_smoothed = Some(num(smoothed)?);
    }
    if first.is_empty() {
        bail!("history.csv has no row up to step 200");
    }
    let start = first.iter().sum::<f64>() / first.len() as f64;
    facts.insert("loss-start".into(), format!("{start:.0}"));
    let end = last_smoothed.context("history.csv has no rows")?;
    facts.insert("loss-smoothed-end".into(), format!("{end:.1}"));
    Ok(())
}

/// The validation loss and perplexity each cell's run printed.
fn training_facts(training: &str, facts: &mut BTreeMap<String, String>) -> Result<()> {
    let mut cell = None;
    for line in training.lines() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            cell = Some(match cmd.split_once("--cell ") {
                Some((_, rest)) => rest.split_whitespace().next().unwrap_or("rnn").to_string(),
                None => "rnn".to_string(),
            });
        } else if let Some(rest) = line.strip_prefix("validation: ") {
            let cell = cell
                .as_deref()
                .context("training.txt: a report without a command")?;
            let loss = rest
                .split_whitespace()
                .next()
                .context("no validation loss")?;
            loss.parse::<f64>()
                .with_context(|| format!("training.txt: bad loss {loss:?}"))?;
            facts.insert(format!("val-{cell}"), loss.to_string());
            let ppl: f64 = rest
                .split_once("perplexity ")
                .and_then(|(_, p)| p.split([',', ' ']).next())
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("training.txt: no perplexity in {line:?}"))?;
            facts.insert(format!("ppl-{cell}"), format!("{ppl:.1}"));
        }
    }
    for cell in ["rnn", "gru", "lstm"] {
        if !facts.contains_key(&format!("val-{cell}")) {
            bail!("training.txt has no validation loss for {cell}");
        }
    }
    Ok(())
}

/// One curve that `charrnn plot gradients` printed: its label, T, and (t, norm) pairs,
/// the last step first.
#[derive(Debug)]
struct Curve {
    label: String,
    t_last: usize,
    norms: Vec<(usize, f64)>,
}

impl Curve {
    fn norm_at(&self, t: usize) -> Result<f64> {
        self.norms
            .iter()
            .find(|(s, _)| *s == t)
            .map(|(_, v)| *v)
            .with_context(|| format!("{}: no norm printed for t = {t}", self.label))
    }
}

/// Parses `LABEL: ‖∂L⟨T⟩/∂a⟨t⟩‖ at t = T = 40: 2.5e0, t = 30: 5.7e-2 (2.2e-2 of t = T), ...`.
/// The quantity `charrnn plot gradients` prints per curve, in the book's notation.
const NORM: &str = "‖∂L⟨T⟩/∂a⟨t⟩‖";

fn parse_curves(printed: &str) -> Result<Vec<Curve>> {
    let mut curves = Vec::new();
    for line in printed.lines().filter(|l| l.contains(NORM)) {
        let (label, rest) = line.split_once(&format!(": {NORM}")).context("no label")?;
        let (_, rest) = rest
            .split_once(" at t = T = ")
            .with_context(|| format!("unexpected line {line:?}"))?;
        let mut norms = Vec::new();
        let mut t_last = 0;
        for (i, piece) in rest.split(", t = ").enumerate() {
            let (t, value) = piece
                .split_once(": ")
                .with_context(|| format!("unexpected line {line:?}"))?;
            let t: usize = t
                .trim()
                .parse()
                .with_context(|| format!("bad t in {line:?}"))?;
            let value: f64 = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("bad norm in {line:?}"))?;
            if i == 0 {
                t_last = t;
            }
            norms.push((t, value));
        }
        curves.push(Curve {
            label: label.to_string(),
            t_last,
            norms,
        });
    }
    Ok(curves)
}

/// `1.93e-5` as `1.9 \times 10^{-5}`, for use inside `$...$`.
fn tex_sci(x: f64) -> String {
    let exp = x.abs().log10().floor() as i32;
    let mantissa = x / 10f64.powi(exp);
    // 9.96 rounds up to 10.0: carry into the exponent.
    let (mantissa, exp) = if (mantissa * 10.0).round() / 10.0 >= 10.0 {
        (mantissa / 10.0, exp + 1)
    } else {
        (mantissa, exp)
    };
    format!("{mantissa:.1} \\times 10^{{{exp}}}")
}

fn gradient_facts(
    gradients: &str,
    cells: &str,
    facts: &mut BTreeMap<String, String>,
) -> Result<()> {
    let curves = parse_curves(gradients)?;
    let find = |label: &str| {
        curves
            .iter()
            .find(|c| c.label == label)
            .with_context(|| format!("gradients.txt has no curve {label:?}"))
    };
    for (key, label) in [
        ("r05", "ρ(W_aa) = 0.5"),
        ("r10", "ρ(W_aa) = 1"),
        ("r15", "ρ(W_aa) = 1.5"),
        ("trained", "trained W_aa"),
    ] {
        let curve = find(label)?;
        let t = curve.t_last;
        let fall = (curve.norm_at(t)? / curve.norm_at(1)?).log10();
        let digits: usize = if key == "trained" { 1 } else { 0 };
        facts.insert(format!("grad-{key}-orders"), format!("{fall:.digits$}"));
        if key != "trained" {
            let per_step = 10f64.powf(fall / (t - 1) as f64);
            facts.insert(format!("grad-{key}-factor"), format!("{per_step:.1}"));
        } else {
            let fall10 = (curve.norm_at(t)? / curve.norm_at(t - 10)?).log10();
            facts.insert("grad-trained-orders10".into(), format!("{fall10:.1}"));
            facts.insert("grad-T".into(), t.to_string());
            facts.insert("grad-steps".into(), (t - 1).to_string());
        }
    }

    for curve in parse_curves(cells)? {
        let cell = curve
            .label
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let t = curve.t_last;
        let last = curve.norm_at(t)?;
        let back10 = curve.norm_at(t - 10)? / last;
        let first = curve.norm_at(1)? / last;
        facts.insert(
            format!("cells-{cell}-back10"),
            format!("{:.0}", 100.0 * back10),
        );
        facts.insert(format!("cells-{cell}-first"), tex_sci(first));
    }
    for cell in ["rnn", "gru", "lstm"] {
        if !facts.contains_key(&format!("cells-{cell}-first")) {
            bail!("gradients-cells.txt has no curve for {cell}");
        }
    }
    Ok(())
}

/// How many steps the r = 0.9 curve takes to fall by a factor of 10, measured over the last
/// ten steps.
fn near_one_facts(printed: &str, facts: &mut BTreeMap<String, String>) -> Result<()> {
    let curves = parse_curves(printed)?;
    let curve = curves
        .iter()
        .find(|c| c.label == "ρ(W_aa) = 0.9")
        .context("gradients-09.txt has no curve for 0.9")?;
    let t = curve.t_last;
    let decades = (curve.norm_at(t)? / curve.norm_at(t - 10)?).log10();
    facts.insert("grad09-decades10".into(), format!("{decades:.2}"));
    facts.insert(
        "grad09-decade-steps".into(),
        format!("{:.1}", 10.0 / decades),
    );
    Ok(())
}

/// The four blocks of `samples.txt`, in the order `cargo xtask figures` writes them.
const SAMPLE_BLOCKS: [&str; 4] = ["t05", "t10", "t15", "topk"];

/// The sample facts: per block, how many names end in -saurus (and for two blocks the most
/// common opening pair of letters); over all blocks, how many names are new. The tidy test recomputes
/// these with its own copy of the rules.
fn sample_facts(
    samples: &str,
    dinosaurs: &str,
    facts: &mut BTreeMap<String, String>,
) -> Result<()> {
    let blocks = sample_blocks(samples);
    if blocks.len() != SAMPLE_BLOCKS.len() {
        bail!(
            "samples.txt has {} blocks, expected {}",
            blocks.len(),
            SAMPLE_BLOCKS.len()
        );
    }
    let known: std::collections::BTreeSet<&str> = dinosaurs.lines().collect();
    let mut total = 0;
    let mut novel = Vec::new();
    for (key, names) in SAMPLE_BLOCKS.iter().zip(&blocks) {
        total += names.len();
        let saurus = names.iter().filter(|n| n.ends_with("saurus")).count();
        facts.insert(format!("samples-{key}-n"), names.len().to_string());
        facts.insert(format!("samples-{key}-saurus"), saurus.to_string());
        // The prose names the most common opening at the lowest temperature and with top-k,
        // where a few openings dominate.
        if matches!(*key, "t05" | "topk") {
            let (opening, count) = most_common_opening(names);
            facts.insert(format!("samples-{key}-opening"), opening);
            facts.insert(format!("samples-{key}-opening-n"), count.to_string());
        }
        for name in names {
            if !known.contains(name.as_str()) {
                novel.push(name.clone());
            }
        }
    }
    facts.insert("samples-total".into(), total.to_string());
    facts.insert("samples-novel".into(), novel.len().to_string());
    let t10 = &blocks[1];
    let longest = t10.iter().max_by_key(|n| n.chars().count()).cloned();
    let shortest = t10.iter().min_by_key(|n| n.chars().count()).cloned();
    facts.insert("samples-t10-longest".into(), longest.unwrap_or_default());
    facts.insert("samples-t10-shortest".into(), shortest.unwrap_or_default());
    // The introduction opens with the first five new names of the top-k block.
    let topk: Vec<&String> = blocks[3]
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .take(5)
        .collect();
    let shown: Vec<String> = topk.iter().map(|n| format!("*{n}*")).collect();
    facts.insert("intro-names".into(), shown.join(", "));
    Ok(())
}

/// The names of each `$ charrnn sample ...` block.
fn sample_blocks(samples: &str) -> Vec<Vec<String>> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in samples.lines() {
        if line.starts_with("$ ") {
            blocks.push(Vec::new());
        } else if !line.trim().is_empty()
            && let Some(block) = blocks.last_mut()
        {
            block.push(line.trim().to_string());
        }
    }
    blocks
}

/// The most common first two letters, and how many names start with them (ties: the
/// alphabetically first).
fn most_common_opening(names: &[String]) -> (String, usize) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in names {
        let opening: String = name.chars().take(2).collect();
        *counts.entry(opening).or_default() += 1;
    }
    let mut best = (String::new(), 0);
    for (opening, n) in counts {
        if n > best.1 {
            best = (opening, n);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_parse_as_charrnn_prints_them() {
        let printed = "ρ(W_aa) = 0.5: ‖∂L⟨T⟩/∂a⟨t⟩‖ at t = T = 40: 2.590e0, t = 30: \
                       5.765e-2 (2.23e-2 of t = T), t = 1: 4.995e-5 (1.93e-5 of t = T)\n";
        let curves = parse_curves(printed).unwrap();
        assert_eq!(curves.len(), 1);
        assert_eq!(curves[0].label, "ρ(W_aa) = 0.5");
        assert_eq!(curves[0].t_last, 40);
        assert_eq!(curves[0].norm_at(30).unwrap(), 5.765e-2);
        assert_eq!(curves[0].norm_at(1).unwrap(), 4.995e-5);
    }

    #[test]
    fn tex_sci_rounds_like_a_reader_would() {
        assert_eq!(tex_sci(1.93e-5), "1.9 \\times 10^{-5}");
        assert_eq!(tex_sci(0.103), "1.0 \\times 10^{-1}");
        assert_eq!(tex_sci(9.97e-3), "1.0 \\times 10^{-2}");
    }

    #[test]
    fn samples_are_counted_per_block() {
        let samples = "$ charrnn sample a\nxsaurus\nxy\n\n$ charrnn sample b\nab\n\n\
                       $ charrnn sample c\nq\n\n$ charrnn sample d\nabc\nabd\nrex\n";
        let mut facts = BTreeMap::new();
        sample_facts(samples, "rex\n", &mut facts).unwrap();
        assert_eq!(facts["samples-t05-saurus"], "1");
        assert_eq!(facts["samples-t05-opening"], "xs");
        assert_eq!(facts["samples-topk-opening"], "ab");
        assert_eq!(facts["samples-topk-opening-n"], "2");
        assert_eq!(facts["samples-total"], "7");
        assert_eq!(facts["samples-novel"], "6");
        assert_eq!(facts["intro-names"], "*abc*, *abd*");
    }
}
