//! The kernels of the fused batch-1 step (`crate::batch1`) for the AVX2 tier, written once
//! with `pulp`'s portable SIMD types instead of intrinsics: no `unsafe` here, and the same
//! source would compile for NEON. The AVX-512 tier runs the intrinsics of `crate::matvec`
//! instead, which keep the general path's bits; these add in orders of their own, so they
//! agree with the general path and the reference to rounding (tested against the
//! reference), not bit for bit.
//!
//! Every column (a row of W_aa or W_ya, a column of W_ax, b_a, `a⟨t⟩`, `da⟨t⟩`, `da_raw⟨t⟩`) holds
//! `ld` values, a multiple of 4 (a register of AVX2) and at most 64, with zeros past its
//! real length, so every loop runs over whole vectors.

use pulp::Simd;

use crate::TokenId;
use crate::elementwise::input_bias_tanh;

/// The most values a padded column holds.
const MAX_LD: usize = 64;

/// The SIMD these kernels run on at the AVX2 tier: pulp's `V3` (AVX2, FMA and the rest of
/// x86-64-v3). Elsewhere a stand-in type that is never used ([`avx2`] gives `None`).
#[cfg(target_arch = "x86_64")]
pub(crate) type Avx2 = pulp::x86::V3;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Avx2 = pulp::Scalar;

/// The AVX2 tier's SIMD, when this process runs at that tier.
pub(crate) fn avx2() -> Option<Avx2> {
    // Asked once: the fused step asks several times per training step.
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<Option<Avx2>> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            (crate::isa::tier() == crate::isa::Tier::Avx2)
                .then(pulp::x86::V3::try_new)
                .flatten()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// out[r] = (row r of w, stride `ld`) · x for each entry of `out`: eight rows at a time,
/// then four, then one, so that up to eight chains of multiply-adds overlap; each row's
/// lanes are summed at the end.
#[inline(always)]
fn rows<S: Simd>(simd: S, w: &[f64], ld: usize, x: &[f64], out: &mut [f64]) {
    let mut r0 = 0;
    while out.len() - r0 >= 8 {
        rows_block::<S, 8>(simd, w, ld, x, &mut out[r0..r0 + 8], r0);
        r0 += 8;
    }
    if out.len() - r0 >= 4 {
        rows_block::<S, 4>(simd, w, ld, x, &mut out[r0..r0 + 4], r0);
        r0 += 4;
    }
    while r0 < out.len() {
        rows_block::<S, 1>(simd, w, ld, x, &mut out[r0..r0 + 1], r0);
        r0 += 1;
    }
}

/// R rows of [`rows`], from row `r0`.
#[inline(always)]
fn rows_block<S: Simd, const R: usize>(
    simd: S,
    w: &[f64],
    ld: usize,
    x: &[f64],
    out: &mut [f64],
    r0: usize,
) {
    let (x, _) = S::as_simd_f64s(&x[..ld]);
    let rs: [&[S::f64s]; R] =
        std::array::from_fn(|r| S::as_simd_f64s(&w[(r0 + r) * ld..(r0 + r + 1) * ld]).0);
    let mut acc = [simd.splat_f64s(0.0); R];
    for (j, &xj) in x.iter().enumerate() {
        for (acc, r) in acc.iter_mut().zip(&rs) {
            *acc = simd.mul_add_e_f64s(r[j], xj, *acc);
        }
    }
    for (o, acc) in out.iter_mut().zip(acc) {
        *o = simd.reduce_sum_f64s(acc);
    }
}

/// acc ← acc + s·v over whole vectors.
#[inline(always)]
fn axpy<S: Simd>(simd: S, acc: &mut [f64], s: f64, v: &[f64]) {
    let (acc, _) = S::as_mut_simd_f64s(acc);
    let (v, _) = S::as_simd_f64s(v);
    let s = simd.splat_f64s(s);
    for (acc, &v) in acc.iter_mut().zip(v) {
        *acc = simd.mul_add_e_f64s(s, v, *acc);
    }
}

/// out = Σ_p coef(p) · vec(p) over p < k, whole vectors: eight vectors of `out` at a
/// time stay in registers through all k terms (eight independent chains), then four, then
/// one.
#[inline(always)]
fn combine<'a, S: Simd>(
    simd: S,
    out: &mut [f64],
    k: usize,
    coef: impl Fn(usize) -> f64 + Copy,
    vec: impl Fn(usize) -> &'a [f64] + Copy,
) {
    let (out, _) = S::as_mut_simd_f64s(out);
    let mut c = 0;
    while out.len() - c >= 8 {
        combine_block::<S, 8>(simd, &mut out[c..c + 8], c, k, coef, vec);
        c += 8;
    }
    if out.len() - c >= 4 {
        combine_block::<S, 4>(simd, &mut out[c..c + 4], c, k, coef, vec);
        c += 4;
    }
    while c < out.len() {
        combine_block::<S, 1>(simd, &mut out[c..c + 1], c, k, coef, vec);
        c += 1;
    }
}

/// N vectors of [`combine`], from vector `c`.
#[inline(always)]
fn combine_block<'a, S: Simd, const N: usize>(
    simd: S,
    out: &mut [S::f64s],
    c: usize,
    k: usize,
    coef: impl Fn(usize) -> f64,
    vec: impl Fn(usize) -> &'a [f64],
) {
    let mut acc = [simd.splat_f64s(0.0); N];
    for p in 0..k {
        let s = simd.splat_f64s(coef(p));
        let v = &S::as_simd_f64s(vec(p)).0[c..c + N];
        for (acc, &v) in acc.iter_mut().zip(v) {
            *acc = simd.mul_add_e_f64s(s, v, *acc);
        }
    }
    out.copy_from_slice(&acc);
}

/// θ ← θ − lr·clamp(g, −c, c) for each entry, returning Σ g².
#[inline(always)]
fn clip_sgd<S: Simd>(simd: S, p: &mut [f64], g: &[f64], c: f64, lr: f64) -> f64 {
    let (p, _) = S::as_mut_simd_f64s(p);
    let (g, _) = S::as_simd_f64s(g);
    let (hi, lo, neg_lr) = (
        simd.splat_f64s(c),
        simd.splat_f64s(-c),
        simd.splat_f64s(-lr),
    );
    let mut sq = simd.splat_f64s(0.0);
    for (p, &g) in p.iter_mut().zip(g) {
        sq = simd.mul_add_e_f64s(g, g, sq);
        let clipped = simd.min_f64s(simd.max_f64s(g, lo), hi);
        *p = simd.mul_add_e_f64s(neg_lr, clipped, *p);
    }
    simd.reduce_sum_f64s(sq)
}

/// The forward recurrence, all steps: for t = 1..=T (T = `inputs.len()`),
/// a⟨t⟩ = tanh(W_aa a⟨t-1⟩ + W_ax[:, x⟨t⟩] + b_a), with W_aa's `n_a` rows, W_ax's columns,
/// b_a and a<0..T> all at stride `ld`. `a` holds a⟨0⟩ (padding zero) and room for the rest.
#[inline(always)]
pub(crate) fn recurrence<S: Simd>(
    simd: S,
    (n_a, ld): (usize, usize),
    (w_aa, w_ax, b_a): (&[f64], &[f64], &[f64]),
    inputs: &[Option<TokenId>],
    a: &mut [f64],
) {
    for (t, input) in inputs.iter().enumerate() {
        let (done, rest) = a.split_at_mut((t + 1) * ld);
        let (prev, next) = (&done[t * ld..], &mut rest[..ld]);
        rows(simd, w_aa, ld, prev, &mut next[..n_a]);
        let w_x = input.map(|id| &w_ax[id as usize * ld..(id as usize + 1) * ld]);
        // The padding stays zero: tanh(0 + 0 + 0) = 0.
        next[n_a..].fill(0.0);
        input_bias_tanh(next, w_x, &b_a[..ld]);
    }
}

/// The logits of every step before the bias: z⟨t⟩[j] = W_ya[j, :] · a⟨t⟩ for the `n_y`
/// rows of W_ya and the T columns of `a` (both at stride `ld`), into `z` (T columns of
/// `n_y`).
#[inline(always)]
pub(crate) fn logits<S: Simd>(
    simd: S,
    w_ya: &[f64],
    (n_y, ld): (usize, usize),
    a: &[f64],
    z: &mut [f64],
) {
    for (a_t, z_t) in a.chunks_exact(ld).zip(z.chunks_exact_mut(n_y)) {
        rows(simd, w_ya, ld, a_t, z_t);
    }
}

/// W_yaᵀ dy⟨t⟩ for every step: da⟨t⟩ = Σ_j dy⟨t⟩[j] · (row j of W_ya), with W_ya's `n_y`
/// rows at stride `ld`, `dy` holding T columns of `n_y` and `da` T columns of `ld`.
#[inline(always)]
pub(crate) fn output_deltas<S: Simd>(
    simd: S,
    w_ya: &[f64],
    (n_y, ld): (usize, usize),
    dy: &[f64],
    da: &mut [f64],
) {
    for (dy_t, da_t) in dy.chunks_exact(n_y).zip(da.chunks_exact_mut(ld)) {
        combine(
            simd,
            da_t,
            n_y,
            |j| dy_t[j],
            |j| &w_ya[j * ld..(j + 1) * ld],
        );
    }
}

/// The backward recurrence, from the last step to the first:
/// da_raw⟨t⟩ = (1 − a⟨t⟩²) ⊙ (da⟨t⟩ + W_aaᵀ da_raw⟨t+1⟩), with `da` holding W_yaᵀ dy⟨t⟩
/// per step (read only), `a` holding a<0..T>, W_aa's `n_a` rows at stride `ld`. Returns
/// Σ da_raw².
#[inline(always)]
pub(crate) fn backward_recurrence<S: Simd>(
    simd: S,
    (n_a, ld): (usize, usize),
    w_aa: &[f64],
    (a, da): (&[f64], &[f64]),
    da_raw: &mut [f64],
    n_steps: usize,
) -> f64 {
    // W_aaᵀ da_raw⟨t+1⟩.
    let mut next = [0.0; MAX_LD];
    let next = &mut next[..ld];
    let mut sq = simd.splat_f64s(0.0);
    let one = simd.splat_f64s(1.0);
    for t in (0..n_steps).rev() {
        let dr_t = &mut da_raw[t * ld..(t + 1) * ld];
        {
            let (a_t, _) = S::as_simd_f64s(&a[(t + 1) * ld..(t + 2) * ld]);
            let (d_t, _) = S::as_simd_f64s(&da[t * ld..(t + 1) * ld]);
            let (n_t, _) = S::as_simd_f64s(next);
            let (r_t, _) = S::as_mut_simd_f64s(dr_t);
            for (((r, &a), &d), &n) in r_t.iter_mut().zip(a_t).zip(d_t).zip(n_t) {
                let through = simd.sub_f64s(one, simd.mul_f64s(a, a));
                *r = simd.mul_f64s(through, simd.add_f64s(d, n));
                sq = simd.mul_add_e_f64s(*r, *r, sq);
            }
        }
        if t > 0 {
            // W_aa's rows are W_aaᵀ's columns: next = Σ_i da_raw⟨t⟩[i] · row i.
            let dr_t = &*dr_t;
            combine(
                simd,
                next,
                n_a,
                |i| dr_t[i],
                |i| &w_aa[i * ld..(i + 1) * ld],
            );
        }
    }
    simd.reduce_sum_f64s(sq)
}

/// For each of the `rows` rows j of `w` (n values at `j·n`), g_j = Σ_p s[j + p·lds] ·
/// v[p·n .. p·n + n] over the k steps, then w_j ← w_j − lr·clamp(g_j, −c, c): a row of dW_ya
/// or dW_aa formed and applied without being stored. Returns Σ g².
#[inline(always)]
pub(crate) fn outer_rows_sgd<S: Simd>(
    simd: S,
    (w, rows, n): (&mut [f64], usize, usize),
    (v, s, lds): (&[f64], &[f64], usize),
    k: usize,
    (c, lr): (f64, f64),
) -> f64 {
    let mut sq = 0.0;
    let mut g = [0.0; MAX_LD];
    let g = &mut g[..n];
    for j in 0..rows {
        combine(simd, g, k, |p| s[j + p * lds], |p| &v[p * n..(p + 1) * n]);
        sq += clip_sgd(simd, &mut w[j * n..(j + 1) * n], g, c, lr);
    }
    sq
}

/// The sum of the k columns of s (n = p.len() values each, stride `lds`), clipped and
/// applied to `p`: db_y and db_a. Returns Σ g².
#[inline(always)]
pub(crate) fn column_sum_sgd<S: Simd>(
    simd: S,
    p: &mut [f64],
    (s, lds): (&[f64], usize),
    k: usize,
    (c, lr): (f64, f64),
) -> f64 {
    let n = p.len();
    let mut g = [0.0; MAX_LD];
    let g = &mut g[..n];
    for col in 0..k {
        for (g, &s) in g.iter_mut().zip(&s[col * lds..col * lds + n]) {
            *g += s;
        }
    }
    // b_y need not fill whole vectors: its tail goes through the same rule, entry by entry.
    let whole = n - n % 4;
    let mut sq = clip_sgd(simd, &mut p[..whole], &g[..whole], c, lr);
    for (p, &g) in p[whole..].iter_mut().zip(&g[whole..]) {
        sq += g * g;
        *p -= lr * g.max(-c).min(c);
    }
    sq
}

/// The chains of steps that share an input, for [`input_columns_sgd`], in `scratch` (which
/// grows to `columns` + T entries once): `first[id]` is the first step whose input is id,
/// `next[t]` the next step with t's input, [`NO_STEP`] ending a chain. Found in one pass, so
/// that no step is compared with every other.
pub(crate) fn chains<'a>(
    inputs: &[Option<TokenId>],
    columns: usize,
    scratch: &'a mut Vec<u32>,
) -> (&'a [u32], &'a [u32]) {
    assert!(inputs.len() < NO_STEP as usize, "steps are numbered in u32");
    scratch.clear();
    scratch.resize(columns + inputs.len(), NO_STEP);
    let (first, next) = scratch.split_at_mut(columns);
    for (t, input) in inputs.iter().enumerate().rev() {
        if let Some(id) = *input {
            let first = first
                .get_mut(id as usize)
                .expect("an input selects a column of w");
            next[t] = *first;
            *first = t as u32;
        }
    }
    (first, next)
}

/// The end of a chain of [`chains`].
pub(crate) const NO_STEP: u32 = u32::MAX;

/// For each column of `w` (n values at `id·n`) that an input selects, the sum of s's
/// columns over the steps with that input (along the [`chains`] `first`, `next`), clipped
/// and applied: W_ax's update. Returns Σ g².
#[inline(always)]
pub(crate) fn input_columns_sgd<S: Simd>(
    simd: S,
    (w, n): (&mut [f64], usize),
    s: &[f64],
    (first, next): (&[u32], &[u32]),
    (c, lr): (f64, f64),
) -> f64 {
    let mut sq = 0.0;
    let mut g = [0.0; MAX_LD];
    let g = &mut g[..n];
    for (id, &start) in first.iter().enumerate() {
        if start == NO_STEP {
            continue;
        }
        g.fill(0.0);
        let mut t = start as usize;
        loop {
            axpy(simd, g, 1.0, &s[t * n..(t + 1) * n]);
            match next[t] {
                NO_STEP => break,
                after => t = after as usize,
            }
        }
        sq += clip_sgd(simd, &mut w[id * n..(id + 1) * n], g, c, lr);
    }
    sq
}
