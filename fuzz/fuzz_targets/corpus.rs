//! Any bytes, in both modes: loading, the vocabulary, encoding, examples, batches and the
//! validation split must return values or typed errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnn_data::{Batch, Corpus, CorpusOptions, StreamBatches};

fuzz_target!(|data: &[u8]| {
    let (flags, bytes) = data.split_first().map_or((0, data), |(f, b)| (*f, b));
    let options = if flags & 1 == 0 {
        CorpusOptions::lines()
    } else {
        CorpusOptions::stream()
    }
    .lowercase(flags & 2 != 0);
    let Ok(corpus) = Corpus::from_bytes("<fuzz>", bytes, options) else {
        return;
    };
    let vocab = corpus.vocab();
    let ids = vocab
        .encode(corpus.text())
        .expect("a corpus encodes with its own vocabulary");
    assert_eq!(vocab.decode(&ids).expect("ids decode"), corpus.text());
    if let Ok(examples) = corpus.line_examples(&vocab) {
        let batch = Batch::from_examples(&examples[..examples.len().min(8)]);
        assert_eq!(batch.batch_size(), examples.len().min(8));
    }
    let m = usize::from(flags >> 4) + 1;
    if let Ok(streams) = StreamBatches::new(ids, m, usize::from(flags & 0x0c) + 1) {
        let _ = streams.chunk(streams.n_chunks().saturating_sub(1));
    }
    let _ = corpus.split_validation(f64::from(flags) / 512.0);
});
