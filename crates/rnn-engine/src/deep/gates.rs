//! The element-wise gate math of one time step, forward and backward, for a block of
//! batch columns: the formulas of `rnn::vanilla`, `rnn::gru` and `rnn::lstm`, fused into
//! one pass per step and compiled for every instruction-set tier (`tiered!`).
//!
//! Every function takes one step's block of a group of columns, column-major: the gate
//! pre-activations `gx` and `gh` of column j are at `j·G·n_a ..`, gate block k of it at
//! `j·G·n_a + k·n_a ..`; the states `h`, `c` and their gradients at `j·n_a ..`. `gx` holds
//! W_ih x plus the biases that add outside a gate product (all of b_ih and b_hh but the
//! GRU's b_hn); `gh` holds W_hh h_prev.
#![allow(unsafe_code)]

use crate::Float;

/// σ(v) = 1 / (1 + e^−v), on the engine's vectorizable exp.
#[inline(always)]
fn sigmoid<F: Float>(v: F) -> F {
    F::one() / (F::one() + (-v).fast_exp())
}

tiered! {
    /// h' = tanh(gx + gh) ([`rnn_forward_impl`]).
    fn rnn_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], h: &mut [F]) = rnn_forward_impl;
    /// One GRU step ([`gru_forward_impl`]).
    fn gru_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &mut [F], b_hn: &[F], h_prev: &[F], h: &mut [F])
        = gru_forward_impl;
    /// One LSTM step ([`lstm_forward_impl`]).
    fn lstm_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], c_prev: &[F], c: &mut [F], h: &mut [F])
        = lstm_forward_impl;
    /// One vanilla step backward ([`rnn_backward_impl`]).
    fn rnn_backward<F: Float>(n_a: usize, gx: &mut [F], h: &[F], dh_above: &[F], dh_next: &[F])
        = rnn_backward_impl;
    /// One GRU step backward ([`gru_backward_impl`]).
    fn gru_backward<F: Float>(n_a: usize, gx: &mut [F], gh: &mut [F], h_prev: &[F], dh_above: &[F], dh_next: &[F], skip: &mut [F])
        = gru_backward_impl;
    /// One LSTM step backward ([`lstm_backward_impl`]).
    fn lstm_backward<F: Float>(n_a: usize, gx: &mut [F], c_prev: &[F], c: &[F], dh_above: &[F], dh_next: &[F], dc_next: &mut [F])
        = lstm_backward_impl;
    /// dst ← a + b, element by element.
    fn add_to<F: Float>(dst: &mut [F], a: &[F], b: &[F]) = add_to_impl;
}

/// h' = tanh(gx + gh), with gx = W_ih x + b_ih and gh = W_hh h_prev.
#[inline(always)]
fn rnn_forward_impl<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], h: &mut [F]) {
    let _ = n_a;
    for ((h, &x), &g) in h.iter_mut().zip(gx.iter()).zip(gh) {
        *h = (x + g).fast_tanh();
    }
}

/// One GRU step: r = σ(gx_r + gh_r), z = σ(gx_z + gh_z), n = tanh(gx_n + r ⊙ (gh_n +
/// b_hn)), h' = (1 − z) ⊙ n + z ⊙ h_prev. Leaves r, z, n in `gx`'s blocks and
/// gh_n + b_hn in `gh`'s third block (what the backward step reads).
#[inline(always)]
fn gru_forward_impl<F: Float>(
    n_a: usize,
    gx: &mut [F],
    gh: &mut [F],
    b_hn: &[F],
    h_prev: &[F],
    h: &mut [F],
) {
    if n_a == 0 {
        return;
    }
    let one = F::one();
    let cols = gx
        .chunks_exact_mut(3 * n_a)
        .zip(gh.chunks_exact_mut(3 * n_a))
        .zip(h_prev.chunks_exact(n_a).zip(h.chunks_exact_mut(n_a)));
    for ((gx, gh), (h_prev, h)) in cols {
        let (xr, rest) = gx.split_at_mut(n_a);
        let (xz, xn) = rest.split_at_mut(n_a);
        let (hr, rest) = gh.split_at_mut(n_a);
        let (hz, hn) = rest.split_at_mut(n_a);
        let (xr, xz, xn) = (&mut xr[..n_a], &mut xz[..n_a], &mut xn[..n_a]);
        let (hr, hz, hn) = (&hr[..n_a], &hz[..n_a], &mut hn[..n_a]);
        let (b_hn, h_prev, h) = (&b_hn[..n_a], &h_prev[..n_a], &mut h[..n_a]);
        for i in 0..n_a {
            let r = sigmoid(xr[i] + hr[i]);
            let z = sigmoid(xz[i] + hz[i]);
            let gh_n = hn[i] + b_hn[i];
            let n = (xn[i] + r * gh_n).fast_tanh();
            h[i] = (one - z) * n + z * h_prev[i];
            (xr[i], xz[i], xn[i], hn[i]) = (r, z, n, gh_n);
        }
    }
}

/// One LSTM step: i, f, o = σ(·), g = tanh(·) of gx + gh, c' = f ⊙ c_prev + i ⊙ g,
/// h' = o ⊙ tanh(c'). Leaves i, f, g, o in `gx`'s blocks.
#[inline(always)]
fn lstm_forward_impl<F: Float>(
    n_a: usize,
    gx: &mut [F],
    gh: &[F],
    c_prev: &[F],
    c: &mut [F],
    h: &mut [F],
) {
    if n_a == 0 {
        return;
    }
    let cols = gx
        .chunks_exact_mut(4 * n_a)
        .zip(gh.chunks_exact(4 * n_a))
        .zip(c_prev.chunks_exact(n_a))
        .zip(c.chunks_exact_mut(n_a).zip(h.chunks_exact_mut(n_a)));
    for (((gx, gh), c_prev), (c, h)) in cols {
        let (xi, rest) = gx.split_at_mut(n_a);
        let (xf, rest) = rest.split_at_mut(n_a);
        let (xg, xo) = rest.split_at_mut(n_a);
        let (xi, xf, xg, xo) = (
            &mut xi[..n_a],
            &mut xf[..n_a],
            &mut xg[..n_a],
            &mut xo[..n_a],
        );
        let (hi, hf) = (&gh[..n_a], &gh[n_a..2 * n_a]);
        let (hg, ho) = (&gh[2 * n_a..3 * n_a], &gh[3 * n_a..4 * n_a]);
        let (c_prev, c, h) = (&c_prev[..n_a], &mut c[..n_a], &mut h[..n_a]);
        for k in 0..n_a {
            let i = sigmoid(xi[k] + hi[k]);
            let f = sigmoid(xf[k] + hf[k]);
            let g = (xg[k] + hg[k]).fast_tanh();
            let o = sigmoid(xo[k] + ho[k]);
            let c_new = f * c_prev[k] + i * g;
            c[k] = c_new;
            h[k] = o * c_new.fast_tanh();
            (xi[k], xf[k], xg[k], xo[k]) = (i, f, g, o);
        }
    }
}

/// One vanilla step backward: dh = dh_above + dh_next, dz = (1 − h'²) ⊙ dh, written over
/// `gx`.
#[inline(always)]
fn rnn_backward_impl<F: Float>(n_a: usize, gx: &mut [F], h: &[F], dh_above: &[F], dh_next: &[F]) {
    let _ = n_a;
    let one = F::one();
    for (((dz, &h), &da), &dn) in gx.iter_mut().zip(h).zip(dh_above).zip(dh_next) {
        *dz = (one - h * h) * (da + dn);
    }
}

/// One GRU step backward, dh = dh_above + dh_next:
///
/// ```text
/// dn_raw = dh ⊙ (1 − z) ⊙ (1 − n²)    dz_raw = dh ⊙ (h_prev − n) ⊙ z(1 − z)
/// dr_raw = dn_raw ⊙ gh_n ⊙ r(1 − r)
/// gx ← [dr_raw; dz_raw; dn_raw]       gh ← [dr_raw; dz_raw; r ⊙ dn_raw]   skip = dh ⊙ z
/// ```
///
/// (dL/dh_prev is W_hhᵀ gh + skip.)
#[inline(always)]
fn gru_backward_impl<F: Float>(
    n_a: usize,
    gx: &mut [F],
    gh: &mut [F],
    h_prev: &[F],
    dh_above: &[F],
    dh_next: &[F],
    skip: &mut [F],
) {
    if n_a == 0 {
        return;
    }
    let one = F::one();
    let cols = gx
        .chunks_exact_mut(3 * n_a)
        .zip(gh.chunks_exact_mut(3 * n_a))
        .zip(h_prev.chunks_exact(n_a).zip(skip.chunks_exact_mut(n_a)))
        .zip(dh_above.chunks_exact(n_a).zip(dh_next.chunks_exact(n_a)));
    for (((gx, gh), (h_prev, skip)), (dh_above, dh_next)) in cols {
        let (xr, rest) = gx.split_at_mut(n_a);
        let (xz, xn) = rest.split_at_mut(n_a);
        let (hr, rest) = gh.split_at_mut(n_a);
        let (hz, hn) = rest.split_at_mut(n_a);
        let (xr, xz, xn) = (&mut xr[..n_a], &mut xz[..n_a], &mut xn[..n_a]);
        let (hr, hz, hn) = (&mut hr[..n_a], &mut hz[..n_a], &mut hn[..n_a]);
        let (h_prev, skip) = (&h_prev[..n_a], &mut skip[..n_a]);
        let (dh_above, dh_next) = (&dh_above[..n_a], &dh_next[..n_a]);
        for i in 0..n_a {
            let (r, z, n, gh_n) = (xr[i], xz[i], xn[i], hn[i]);
            let dh = dh_above[i] + dh_next[i];
            let dn_raw = dh * (one - z) * (one - n * n);
            let dz_raw = dh * (h_prev[i] - n) * (z * (one - z));
            let dr_raw = dn_raw * gh_n * (r * (one - r));
            (xr[i], xz[i], xn[i]) = (dr_raw, dz_raw, dn_raw);
            (hr[i], hz[i], hn[i]) = (dr_raw, dz_raw, r * dn_raw);
            skip[i] = dh * z;
        }
    }
}

/// One LSTM step backward, dh = dh_above + dh_next and dc' = `dc_next`:
///
/// ```text
/// dc = dc' + dh ⊙ o ⊙ (1 − tanh²c')
/// gx ← [dc ⊙ g ⊙ i(1 − i); dc ⊙ c_prev ⊙ f(1 − f); dc ⊙ i ⊙ (1 − g²); dh ⊙ tanh c' ⊙ o(1 − o)]
/// dc_next ← dc ⊙ f
/// ```
#[inline(always)]
fn lstm_backward_impl<F: Float>(
    n_a: usize,
    gx: &mut [F],
    c_prev: &[F],
    c: &[F],
    dh_above: &[F],
    dh_next: &[F],
    dc_next: &mut [F],
) {
    if n_a == 0 {
        return;
    }
    let one = F::one();
    let cols = gx
        .chunks_exact_mut(4 * n_a)
        .zip(c_prev.chunks_exact(n_a).zip(c.chunks_exact(n_a)))
        .zip(dh_above.chunks_exact(n_a).zip(dh_next.chunks_exact(n_a)))
        .zip(dc_next.chunks_exact_mut(n_a));
    for (((gx, (c_prev, c)), (dh_above, dh_next)), dc_next) in cols {
        let (xi, rest) = gx.split_at_mut(n_a);
        let (xf, rest) = rest.split_at_mut(n_a);
        let (xg, xo) = rest.split_at_mut(n_a);
        let (xi, xf, xg, xo) = (
            &mut xi[..n_a],
            &mut xf[..n_a],
            &mut xg[..n_a],
            &mut xo[..n_a],
        );
        let (c_prev, c, dc_next) = (&c_prev[..n_a], &c[..n_a], &mut dc_next[..n_a]);
        let (dh_above, dh_next) = (&dh_above[..n_a], &dh_next[..n_a]);
        for k in 0..n_a {
            let (i, f, g, o) = (xi[k], xf[k], xg[k], xo[k]);
            let dh = dh_above[k] + dh_next[k];
            let tanh_c = c[k].fast_tanh();
            let dc = dc_next[k] + dh * o * (one - tanh_c * tanh_c);
            xi[k] = dc * g * (i * (one - i));
            xf[k] = dc * c_prev[k] * (f * (one - f));
            xg[k] = dc * i * (one - g * g);
            xo[k] = dh * tanh_c * (o * (one - o));
            dc_next[k] = dc * f;
        }
    }
}

#[inline(always)]
fn add_to_impl<F: Float>(dst: &mut [F], a: &[F], b: &[F]) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = a + b;
    }
}
