//! Project tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! Each task installs what it needs when it is missing (pinned versions, `cargo install
//! --locked`, a local Python virtual environment under `target/`), so the same command
//! works on a fresh machine and in CI.

use std::process::ExitCode;

mod autograd;
mod book;
mod interop;
mod notebooks;
mod quality;
mod util;

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  autograd    check the reference's GRU/LSTM/stacked gradients against PyTorch autograd
              (shared torch venv; TORCH_PYTHON=/path/to/python uses an existing interpreter)
  book        install mdbook + mdbook-katex if missing, regenerate nothing, build book/ into book/book
  figures     regenerate every image the book shows (runs charrnn)
  interop     train every cell x 1-2 layers with charrnn, export, and check the probabilities
              and eval losses with NumPy and with nn.RNN/GRU/LSTM (shared torch venv)
  notebooks   install evcxr_jupyter + Jupyter's execution pieces if missing, execute every notebook
  quality     train every row of the quality table with charrnn and rewrite the table (book and
              README) and its plots; --rows id,id re-runs some rows, --render only redraws,
              --quick runs every row for 200 steps and writes nothing (CI)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("autograd") => autograd::run(&args[1..]),
        Some("book") => book::build(&args[1..]),
        Some("figures") => book::figures(&args[1..]),
        Some("interop") => interop::run(&args[1..]),
        Some("notebooks") => notebooks::run(&args[1..]),
        Some("quality") => quality::run_task(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown task {other:?}\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
