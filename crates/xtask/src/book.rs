//! `cargo xtask book` and `cargo xtask figures`.

use anyhow::{Result, bail};

pub fn build(_args: &[String]) -> Result<()> {
    bail!("the book task is being written (issue 6)")
}

pub fn figures(_args: &[String]) -> Result<()> {
    bail!("the figures task is being written (issue 6)")
}
