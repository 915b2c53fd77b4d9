//! Vocabulary, one-hot vectors, corpora and batches for a character-level RNN.
//!
//! The path from a text file to what the model eats:
//!
//! 1. [`Corpus`] loads a text (a file, bytes or a string) in one of two [`CorpusMode`]s:
//!    [`Lines`](CorpusMode::Lines), one example per line such as a list of dinosaur names, or
//!    [`Stream`](CorpusMode::Stream), one long text such as Shakespeare. Bad input (missing
//!    file, invalid UTF-8, nothing but blank lines) is a [`CorpusError`] naming the file and the
//!    position.
//! 2. [`Vocab`] maps characters to [`TokenId`]s: sorted by code point, with `'\n'` always id 0.
//!    It is deterministic and is stored in checkpoints; [`Vocab::one_hot`] gives the dense
//!    `(n_x, m)` one-hot columns for reference computations.
//! 3. [`Corpus::line_examples`] turns each line into an [`Example`] as in the post: inputs
//!    `[None, c1, .., cn]` (no input at the first step), targets `[c1, .., cn, '\n']`, and
//!    [`Batch::from_examples`] stacks examples into a time-major `(T, m)` [`Batch`], padding
//!    with `None`.
//! 4. [`StreamBatches`] cuts a stream into `m` parallel streams and chunks of `T` steps for
//!    truncated backpropagation through time; each chunk continues the previous one.
//!
//! # Example
//!
//! ```
//! use rnn_data::{Batch, Corpus, CorpusOptions, StreamBatches};
//!
//! let corpus = Corpus::from_text("<string>", "Rex\nAbc\r\n\n", CorpusOptions::lines().lowercase(true))?;
//! let vocab = corpus.vocab();
//! assert_eq!(vocab.chars(), &['\n', 'a', 'b', 'c', 'e', 'r', 'x']);
//!
//! // Names: one example per line, padded into a batch.
//! let examples = corpus.line_examples(&vocab)?;
//! let batch = Batch::from_examples(&examples);
//! assert_eq!((batch.seq_len(), batch.batch_size()), (4, 2)); // (T, m)
//! assert_eq!(batch.inputs[[0, 0]], None); // The first step has no input.
//! let x1 = vocab.one_hot::<f64>(&batch.inputs.row(1).to_vec())?;
//! assert_eq!(x1.dim(), (vocab.len(), 2)); // (n_x, m)
//!
//! // A stream: the same text as one sequence, two parallel streams, chunks of 3 steps.
//! let ids = vocab.encode(corpus.text())?;
//! let chunks = StreamBatches::new(ids, 2, 3)?;
//! assert_eq!(chunks.chunk(0).inputs.dim(), (3, 2));
//! assert_eq!(vocab.decode(&[5, 4, 6])?, "rex");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod batch;
mod corpus;
mod vocab;

pub use batch::{Batch, BatchError, Example, StreamBatches};
pub use corpus::{
    Corpus, CorpusError, CorpusMode, CorpusOptions, DEFAULT_MAX_BYTES, ParseCorpusModeError,
};
pub use vocab::{DecodeError, EncodeError, TokenId, Vocab, VocabError};
