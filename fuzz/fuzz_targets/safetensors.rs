//! Any bytes as a safetensors import: weights or a typed error, never a panic; whatever
//! imports must make a checkpoint that loads again (as `charrnn import` writes one).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rnn_engine::export::{Imported, from_safetensors, state_from_import};
use rnn_engine::{Checkpoint, Dtype};

fuzz_target!(|data: &[u8]| {
    if let Ok((params, info)) = from_safetensors(data) {
        let v = info.vocab.len();
        let (n_x, n_y) = match &params {
            Imported::Vanilla(p) => (p.n_x(), p.n_y()),
            Imported::Deep(p) => (p.shape().n_x, p.shape().n_y),
        };
        assert_eq!((n_x, n_y), (v, v));
        let state = state_from_import(params, &info);
        let ckpt = match info.dtype {
            Dtype::F32 => Checkpoint::new(&state.cast::<f32>(), "<fuzz>"),
            Dtype::F64 => Checkpoint::new(&state, "<fuzz>"),
        };
        let json = serde_json::to_vec(&ckpt).expect("a checkpoint serializes");
        if let Err(e) = Checkpoint::from_bytes(&json, Path::new("<fuzz>")) {
            panic!("an import made a checkpoint that does not load: {e}");
        }
    }
});
