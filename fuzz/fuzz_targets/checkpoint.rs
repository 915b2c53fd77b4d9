//! Any bytes as a checkpoint: a checkpoint or a typed error, never a panic; whatever loads
//! must be consistent enough to resume from, and load again once saved.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rnn_engine::Checkpoint;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = Checkpoint::from_bytes(data, Path::new("<fuzz>")) {
        let state = ckpt.state_as::<f64>();
        let v = state.vocab.len();
        let shape = state.model.shape();
        assert_eq!((shape.n_x, shape.n_y), (v, v));
        let json = serde_json::to_vec(&ckpt).expect("a checkpoint serializes");
        let again = Checkpoint::from_bytes(&json, Path::new("<fuzz>"))
            .expect("a loaded checkpoint loads again once saved");
        assert_eq!(again, ckpt);
    }
});
