//! `cargo xtask notebooks`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("the notebooks task is being written (issue 5)")
}
