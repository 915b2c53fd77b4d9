//! `charrnn`: train, sample, evaluate and inspect a character-level RNN from the command line.
//!
//! Each subcommand lives in its own module; this file only parses the command line and turns
//! errors into one line on stderr and exit code 1.

mod bench;
mod checkpoint;
mod data;
mod eval;
mod export;
mod gradcheck;
mod novelty;
mod output;
mod plot;
mod probs;
mod rundir;
mod sample;
mod train;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train, sample, evaluate and inspect a vanilla character-level RNN.
///
/// Start with `charrnn train` (dinosaur names, bundled), then `charrnn sample --checkpoint
/// runs/dinosaurs`.
#[derive(Debug, Parser)]
#[command(name = "charrnn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (by default on the bundled dinosaur names) into a run directory.
    Train(Box<train::TrainArgs>),
    /// Draw samples (names, or text) from a trained model.
    Sample(sample::SampleArgs),
    /// Measure a model's loss per character, perplexity and bits per character on a text.
    Eval(eval::EvalArgs),
    /// Compare backpropagation through time with finite differences on a small random model.
    Gradcheck(gradcheck::GradcheckArgs),
    /// Draw a loss curve, hidden activations, next-character probabilities or gradient norms.
    Plot(plot::PlotArgs),
    /// Write a checkpoint's weights as safetensors, named as PyTorch's nn.RNN + nn.Linear.
    Export(export::ExportArgs),
    /// Make a checkpoint from a safetensors file written by `charrnn export`.
    Import(export::ImportArgs),
    /// Print the next-character probabilities for a text as JSON (for interop checks).
    #[command(hide = true)]
    Probs(probs::ProbsArgs),
    /// Measure training throughput (chars/s, GFLOP/s) on a standard configuration.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`charrnn sample --n 1000 | head`) is not an error worth a message.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            // A run stopped by a signal (after saving) exits as shells expect: 128 + N.
            match err.downcast_ref::<train::Interrupted>() {
                Some(i) => ExitCode::from(u8::try_from(128 + i.signal).unwrap_or(1)),
                None => ExitCode::from(1),
            }
        }
    }
}

/// The error and its causes on one line, "outer: cause: root cause", each cause said once
/// (some errors already print their source in their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Sample(args) => sample::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Gradcheck(args) => gradcheck::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Export(args) => export::run_export(args),
        Command::Import(args) => export::run_import(args),
        Command::Probs(args) => probs::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = io::Error::new(io::ErrorKind::NotFound, "No such file (os error 2)");
        #[derive(Debug, thiserror::Error)]
        #[error("x.txt: {source}")]
        struct Quoting {
            source: io::Error,
        }
        let err = anyhow::Error::new(Quoting { source: io }).context("cannot train");
        assert_eq!(
            one_line(&err),
            "cannot train: x.txt: No such file (os error 2)"
        );
    }
}
