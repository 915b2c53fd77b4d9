//! The element-wise gate math of one time step, forward and backward, for a block of
//! batch columns: the formulas of `rnn::vanilla`, `rnn::gru` and `rnn::lstm`, fused into
//! one pass per step and compiled for every instruction-set tier (`simd_fn!` of `kernels`).
//!
//! Every function takes one step's block of a group of columns, column-major: the gate
//! pre-activations `gx` and `gh` of column j are at `j·G·n_a ..`, gate block k of it at
//! `j·G·n_a + k·n_a ..`; the states `h`, `c` and their gradients at `j·n_a ..`. `gx` holds
//! W_ih x plus the biases that add outside a gate product (all of b_ih and b_hh but the
//! GRU's b_hn); `gh` holds W_hh h_prev.
#![allow(unsafe_code)]

use crate::Float;
use crate::kernels::simd_fn;

/// σ(v) = 1 / (1 + e^−v), computed as (1 + tanh(v/2)) / 2 on the engine's tanh, which
/// vectorizes in both types (its `f32` exp does not: it rounds and converts to an integer
/// with saturation). Its error is absolute, a few units in the last place of 1.
#[inline(always)]
fn sigmoid<F: Float>(v: F) -> F {
    let half = F::cast(0.5);
    half + half * (half * v).fast_tanh()
}

simd_fn! {
    /// h' = tanh(gx + gh) ([`rnn_forward_impl`]).
    pub(super) fn rnn_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], h: &mut [F]) = rnn_forward_impl;
    /// One GRU step ([`gru_forward_impl`]).
    pub(super) fn gru_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &mut [F], b_hn: &[F], h_prev: &[F], h: &mut [F])
        = gru_forward_impl;
    /// One LSTM step ([`lstm_forward_impl`]).
    pub(super) fn lstm_forward<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], c_prev: &[F], c: &mut [F], h: &mut [F])
        = lstm_forward_impl;
    /// One vanilla step backward ([`rnn_backward_impl`]).
    pub(super) fn rnn_backward<F: Float>(n_a: usize, gx: &mut [F], h: &[F], dh_above: &[F], dh_next: &[F])
        = rnn_backward_impl;
    /// One GRU step backward ([`gru_backward_impl`]).
    pub(super) fn gru_backward<F: Float>(n_a: usize, gx: &mut [F], gh: &mut [F], h_prev: &[F], dh_above: &[F], dh_next: &[F], skip: &mut [F])
        = gru_backward_impl;
    /// One LSTM step backward ([`lstm_backward_impl`]).
    pub(super) fn lstm_backward<F: Float>(n_a: usize, gx: &mut [F], c_prev: &[F], c: &[F], dh_above: &[F], dh_next: &[F], dc_next: &mut [F])
        = lstm_backward_impl;
    /// dst ← a + b, element by element.
    pub(super) fn add_to<F: Float>(dst: &mut [F], a: &[F], b: &[F]) = add_to_impl;
}

/// h' = tanh(gx + gh), with gx = W_ih x + b_ih and gh = W_hh h_prev.
#[inline(always)]
fn rnn_forward_impl<F: Float>(n_a: usize, gx: &mut [F], gh: &[F], h: &mut [F]) {
    let _ = n_a;
    for ((h, &x), &g) in h.iter_mut().zip(gx.iter()).zip(gh) {
        *h = (x + g).fast_tanh();
    }
}

/// Gate blocks `k` of a column of G gates: rows k·n_a .. (k + 1)·n_a.
fn split3<F>(col: &mut [F], n_a: usize) -> (&mut [F], &mut [F], &mut [F]) {
    let (a, rest) = col.split_at_mut(n_a);
    let (b, c) = rest.split_at_mut(n_a);
    (a, b, c)
}

/// [`split3`] for four gates.
fn split4<F>(col: &mut [F], n_a: usize) -> (&mut [F], &mut [F], &mut [F], &mut [F]) {
    let (a, rest) = col.split_at_mut(n_a);
    let (b, c, d) = split3(rest, n_a);
    (a, b, c, d)
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
    let cols = gx
        .chunks_exact_mut(3 * n_a)
        .zip(gh.chunks_exact_mut(3 * n_a))
        .zip(h_prev.chunks_exact(n_a).zip(h.chunks_exact_mut(n_a)));
    for ((gx, gh), (h_prev, h)) in cols {
        let (xr, xz, xn) = split3(gx, n_a);
        let (hr, hz, hn) = split3(gh, n_a);
        gru_forward_column(xr, xz, xn, hr, hz, hn, b_hn, h_prev, h);
    }
}

/// [`gru_forward_impl`] for one column. The slices are separate arguments, so that the
/// compiler knows they do not overlap and vectorizes the loop without run-time checks
/// (too many for it when they come from one split slice).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_forward_column<F: Float>(
    xr: &mut [F],
    xz: &mut [F],
    xn: &mut [F],
    hr: &[F],
    hz: &[F],
    hn: &mut [F],
    b_hn: &[F],
    h_prev: &[F],
    h: &mut [F],
) {
    let n_a = h.len();
    let one = F::one();
    let (xr, xz, xn) = (&mut xr[..n_a], &mut xz[..n_a], &mut xn[..n_a]);
    let (hr, hz, hn) = (&hr[..n_a], &hz[..n_a], &mut hn[..n_a]);
    let (b_hn, h_prev) = (&b_hn[..n_a], &h_prev[..n_a]);
    for i in 0..n_a {
        let r = sigmoid(xr[i] + hr[i]);
        let z = sigmoid(xz[i] + hz[i]);
        let gh_n = hn[i] + b_hn[i];
        let n = (xn[i] + r * gh_n).fast_tanh();
        h[i] = (one - z) * n + z * h_prev[i];
        xr[i] = r;
        xz[i] = z;
        xn[i] = n;
        hn[i] = gh_n;
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
        let (xi, xf, xg, xo) = split4(gx, n_a);
        let (hi, hf) = (&gh[..n_a], &gh[n_a..2 * n_a]);
        let (hg, ho) = (&gh[2 * n_a..3 * n_a], &gh[3 * n_a..4 * n_a]);
        lstm_forward_column(xi, xf, xg, xo, hi, hf, hg, ho, c_prev, c, h);
    }
}

/// [`lstm_forward_impl`] for one column, the slices as separate arguments (see
/// [`gru_forward_column`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_forward_column<F: Float>(
    xi: &mut [F],
    xf: &mut [F],
    xg: &mut [F],
    xo: &mut [F],
    hi: &[F],
    hf: &[F],
    hg: &[F],
    ho: &[F],
    c_prev: &[F],
    c: &mut [F],
    h: &mut [F],
) {
    let n_a = h.len();
    let (xi, xf, xg, xo) = (
        &mut xi[..n_a],
        &mut xf[..n_a],
        &mut xg[..n_a],
        &mut xo[..n_a],
    );
    let (hi, hf, hg, ho) = (&hi[..n_a], &hf[..n_a], &hg[..n_a], &ho[..n_a]);
    let (c_prev, c) = (&c_prev[..n_a], &mut c[..n_a]);
    for k in 0..n_a {
        let i = sigmoid(xi[k] + hi[k]);
        let f = sigmoid(xf[k] + hf[k]);
        let g = (xg[k] + hg[k]).fast_tanh();
        let o = sigmoid(xo[k] + ho[k]);
        let c_new = f * c_prev[k] + i * g;
        c[k] = c_new;
        h[k] = o * c_new.fast_tanh();
        xi[k] = i;
        xf[k] = f;
        xg[k] = g;
        xo[k] = o;
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
    let cols = gx
        .chunks_exact_mut(3 * n_a)
        .zip(gh.chunks_exact_mut(3 * n_a))
        .zip(h_prev.chunks_exact(n_a).zip(skip.chunks_exact_mut(n_a)))
        .zip(dh_above.chunks_exact(n_a).zip(dh_next.chunks_exact(n_a)));
    for (((gx, gh), (h_prev, skip)), (dh_above, dh_next)) in cols {
        let (xr, xz, xn) = split3(gx, n_a);
        let (hr, hz, hn) = split3(gh, n_a);
        gru_backward_column(xr, xz, xn, hr, hz, hn, h_prev, dh_above, dh_next, skip);
    }
}

/// [`gru_backward_impl`] for one column, the slices as separate arguments (see
/// [`gru_forward_column`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gru_backward_column<F: Float>(
    xr: &mut [F],
    xz: &mut [F],
    xn: &mut [F],
    hr: &mut [F],
    hz: &mut [F],
    hn: &mut [F],
    h_prev: &[F],
    dh_above: &[F],
    dh_next: &[F],
    skip: &mut [F],
) {
    let n_a = skip.len();
    let one = F::one();
    let (xr, xz, xn) = (&mut xr[..n_a], &mut xz[..n_a], &mut xn[..n_a]);
    let (hr, hz, hn) = (&mut hr[..n_a], &mut hz[..n_a], &mut hn[..n_a]);
    let (h_prev, dh_above, dh_next) = (&h_prev[..n_a], &dh_above[..n_a], &dh_next[..n_a]);
    for i in 0..n_a {
        let (r, z, n, gh_n) = (xr[i], xz[i], xn[i], hn[i]);
        let dh = dh_above[i] + dh_next[i];
        let dn_raw = dh * (one - z) * (one - n * n);
        let dz_raw = dh * (h_prev[i] - n) * (z * (one - z));
        let dr_raw = dn_raw * gh_n * (r * (one - r));
        xr[i] = dr_raw;
        xz[i] = dz_raw;
        xn[i] = dn_raw;
        hr[i] = dr_raw;
        hz[i] = dz_raw;
        hn[i] = r * dn_raw;
        skip[i] = dh * z;
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
    let cols = gx
        .chunks_exact_mut(4 * n_a)
        .zip(c_prev.chunks_exact(n_a).zip(c.chunks_exact(n_a)))
        .zip(dh_above.chunks_exact(n_a).zip(dh_next.chunks_exact(n_a)))
        .zip(dc_next.chunks_exact_mut(n_a));
    for (((gx, (c_prev, c)), (dh_above, dh_next)), dc_next) in cols {
        let (xi, xf, xg, xo) = split4(gx, n_a);
        lstm_backward_column(xi, xf, xg, xo, c_prev, c, dh_above, dh_next, dc_next);
    }
}

/// [`lstm_backward_impl`] for one column, the slices as separate arguments (see
/// [`gru_forward_column`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn lstm_backward_column<F: Float>(
    xi: &mut [F],
    xf: &mut [F],
    xg: &mut [F],
    xo: &mut [F],
    c_prev: &[F],
    c: &[F],
    dh_above: &[F],
    dh_next: &[F],
    dc_next: &mut [F],
) {
    let n_a = dc_next.len();
    let one = F::one();
    let (xi, xf, xg, xo) = (
        &mut xi[..n_a],
        &mut xf[..n_a],
        &mut xg[..n_a],
        &mut xo[..n_a],
    );
    let (c_prev, c) = (&c_prev[..n_a], &c[..n_a]);
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

#[inline(always)]
fn add_to_impl<F: Float>(dst: &mut [F], a: &[F], b: &[F]) {
    for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
        *d = a + b;
    }
}
