//! Examples and time-major batches of token ids: padded batches of names, and chunks of parallel
//! streams for truncated backpropagation through time.

use ndarray::Array2;
use thiserror::Error;

use crate::vocab::TokenId;

/// One training sequence: at step `t` the model reads `inputs[t]` and should predict `targets[t]`.
///
/// `inputs` and `targets` have the same length `T`. An input of `None` means "no input" (the
/// zero vector), as at the first step of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The input id at each step, or `None` for no input.
    pub inputs: Vec<Option<TokenId>>,
    /// The id to predict at each step.
    pub targets: Vec<TokenId>,
}

impl Example {
    /// The number of steps, `T`.
    pub fn len(&self) -> usize {
        self.inputs.len().max(self.targets.len())
    }

    /// Whether the example has no steps.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A batch of `m` sequences, time-major: row `t` holds step `t` of every sequence.
///
/// An input of `None` is "no input" (the zero vector); a target of `None` is padding, which adds
/// neither loss nor gradient. Examples of different lengths are padded at the end to the longest
/// (padding rather than bucketing by length: simpler, and names are short), with `None` inputs
/// and `None` targets.
///
/// # Shapes
///
/// `inputs`, `targets`: `(T, m)`; `lengths`: `m`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `inputs[[t, j]]`: the input of sequence `j` at step `t`.
    pub inputs: Array2<Option<TokenId>>,
    /// `targets[[t, j]]`: the target of sequence `j` at step `t`, `None` for padding.
    pub targets: Array2<Option<TokenId>>,
    /// `lengths[j]`: the real (unpadded) length of sequence `j`.
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Stacks examples as the columns of a batch, padding to the longest.
    ///
    /// An empty slice gives an empty `(0, 0)` batch. An example whose `inputs` and `targets`
    /// differ in length counts as long as the longer, the missing entries being `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rnn_data::{Batch, Example};
    ///
    /// let short = Example { inputs: vec![None, Some(1)], targets: vec![1, 0] };
    /// let long = Example { inputs: vec![None, Some(2), Some(1)], targets: vec![2, 1, 0] };
    /// let batch = Batch::from_examples(&[short, long]);
    /// assert_eq!((batch.seq_len(), batch.batch_size()), (3, 2));
    /// assert_eq!(batch.targets[[2, 0]], None); // padding
    /// assert_eq!(batch.n_targets(), 5);
    /// ```
    // ANCHOR: pad_batch
    pub fn from_examples(examples: &[Example]) -> Batch {
        let seq_len = examples.iter().map(Example::len).max().unwrap_or(0);
        let shape = (seq_len, examples.len()); // (T, m)
        let mut inputs = Array2::from_elem(shape, None);
        let mut targets = Array2::from_elem(shape, None);
        for (j, example) in examples.iter().enumerate() {
            for (t, &input) in example.inputs.iter().enumerate() {
                inputs[[t, j]] = input;
            }
            for (t, &target) in example.targets.iter().enumerate() {
                targets[[t, j]] = Some(target);
            }
        }
        let lengths = examples.iter().map(Example::len).collect();
        Batch {
            inputs,
            targets,
            lengths,
        }
    }
    // ANCHOR_END: pad_batch

    /// The number of time steps, `T`.
    pub fn seq_len(&self) -> usize {
        self.inputs.nrows()
    }

    /// The number of sequences, `m`.
    pub fn batch_size(&self) -> usize {
        self.inputs.ncols()
    }

    /// The number of real (non-padding) targets: the number of terms in the summed loss.
    pub fn n_targets(&self) -> usize {
        self.targets
            .iter()
            .filter(|target| target.is_some())
            .count()
    }
}

/// Why a text cannot be cut into stream batches.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BatchError {
    /// A batch needs at least one stream.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// A chunk needs at least one step.
    #[error("sequence length must be at least 1")]
    ZeroSeqLen,
    /// Each stream needs at least one input and its target.
    #[error("{n_ids} token(s) are too few for {batch_size} stream(s): need at least {}", batch_size + 1)]
    TooShort {
        /// The number of ids given.
        n_ids: usize,
        /// The number of streams asked for.
        batch_size: usize,
    },
}

/// Cuts one long id sequence into batches for truncated BPTT, with `m` parallel streams (as in
/// min-char-rnn, widened to a batch).
///
/// The ids are cut into `m` contiguous streams of equal length `L = (ids.len() - 1) / m`, the
/// remainder at the end being dropped (the `- 1` leaves room for the last target). Chunk `k` holds
/// steps `k*T .. (k+1)*T` of every stream: `inputs[[t, j]] = stream_j[k*T + t]` and
/// `targets[[t, j]]` is the id that follows it in the text. There are `n_chunks = L / T` chunks;
/// a last partial chunk is dropped, except that when `L < T` there is one chunk of length `L`.
///
/// Chunk `k + 1` continues chunk `k` in every column, so the hidden state at the end of one chunk
/// is the right initial state for the next. No entry is padding.
///
/// # Examples
///
/// ```
/// use rnn_data::StreamBatches;
///
/// let batches = StreamBatches::new((0..=20).collect(), 2, 3)?;
/// assert_eq!(batches.n_chunks(), 3); // Two streams of 10 ids: 0..10 and 10..20.
/// let chunk = batches.chunk(1);
/// assert_eq!(chunk.inputs.column(1).to_vec(), [Some(13), Some(14), Some(15)]);
/// assert_eq!(chunk.targets.column(1).to_vec(), [Some(14), Some(15), Some(16)]);
/// # Ok::<(), rnn_data::BatchError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamBatches {
    ids: Vec<TokenId>,
    batch_size: usize,
    /// The chunk length actually used: `min(T, L)`.
    seq_len: usize,
    /// `L`, the number of inputs per stream.
    stream_len: usize,
    n_chunks: usize,
}

impl StreamBatches {
    /// Prepares `batch_size` (`m`) streams cut into chunks of `seq_len` (`T`) steps.
    ///
    /// # Errors
    ///
    /// [`BatchError::ZeroBatchSize`], [`BatchError::ZeroSeqLen`], or [`BatchError::TooShort`]
    /// if there are fewer than `batch_size + 1` ids (less than one step per stream).
    pub fn new(
        ids: Vec<TokenId>,
        batch_size: usize,
        seq_len: usize,
    ) -> Result<StreamBatches, BatchError> {
        if batch_size == 0 {
            return Err(BatchError::ZeroBatchSize);
        }
        if seq_len == 0 {
            return Err(BatchError::ZeroSeqLen);
        }
        let stream_len = ids.len().saturating_sub(1) / batch_size;
        if stream_len == 0 {
            return Err(BatchError::TooShort {
                n_ids: ids.len(),
                batch_size,
            });
        }
        let seq_len = seq_len.min(stream_len);
        let n_chunks = stream_len / seq_len;
        Ok(StreamBatches {
            ids,
            batch_size,
            seq_len,
            stream_len,
            n_chunks,
        })
    }

    /// The number of chunks per pass over the text (at least 1).
    pub fn n_chunks(&self) -> usize {
        self.n_chunks
    }

    /// Chunk `k % n_chunks`, as a `(T, m)` batch without padding.
    pub fn chunk(&self, k: usize) -> Batch {
        let k = k % self.n_chunks;
        let shape = (self.seq_len, self.batch_size); // (T, m)
        let position = |t: usize, j: usize| j * self.stream_len + k * self.seq_len + t;
        let inputs = Array2::from_shape_fn(shape, |(t, j)| Some(self.ids[position(t, j)]));
        let targets = Array2::from_shape_fn(shape, |(t, j)| Some(self.ids[position(t, j) + 1]));
        Batch {
            inputs,
            targets,
            lengths: vec![self.seq_len; self.batch_size],
        }
    }

    /// The chunks in order, one pass over the text.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Batch> + '_ {
        (0..self.n_chunks).map(|k| self.chunk(k))
    }

    /// The number of parallel streams, `m`.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of steps per chunk, `T`: the requested length, or `L` if the streams are shorter.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The number of inputs per stream, `L`.
    pub fn stream_len(&self) -> usize {
        self.stream_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn batch_pads_shorter_examples_at_the_end() {
        let examples = [
            Example {
                inputs: vec![None, Some(1)],
                targets: vec![1, 0],
            },
            Example {
                inputs: vec![None, Some(2), Some(3), Some(4)],
                targets: vec![2, 3, 4, 0],
            },
        ];
        let batch = Batch::from_examples(&examples);
        assert_eq!((batch.seq_len(), batch.batch_size()), (4, 2));
        assert_eq!(
            batch.inputs,
            array![
                [None, None],
                [Some(1), Some(2)],
                [None, Some(3)],
                [None, Some(4)]
            ]
        );
        assert_eq!(
            batch.targets,
            array![
                [Some(1), Some(2)],
                [Some(0), Some(3)],
                [None, Some(4)],
                [None, Some(0)]
            ]
        );
        assert_eq!(batch.lengths, [2, 4]);
        assert_eq!(batch.n_targets(), 6);
    }

    #[test]
    fn empty_batch_has_no_steps_and_no_columns() {
        let batch = Batch::from_examples(&[]);
        assert_eq!(
            (batch.seq_len(), batch.batch_size(), batch.n_targets()),
            (0, 0, 0)
        );
        assert!(batch.lengths.is_empty());
    }

    #[test]
    fn mismatched_example_is_padded_not_a_panic() {
        let odd = Example {
            inputs: vec![None],
            targets: vec![1, 2],
        };
        assert_eq!(odd.len(), 2);
        let batch = Batch::from_examples(&[odd]);
        assert_eq!(batch.inputs, array![[None], [None]]);
        assert_eq!(batch.targets, array![[Some(1)], [Some(2)]]);
        assert_eq!(batch.lengths, [2]);
    }

    #[test]
    fn stream_chunks_are_exact_and_continue_each_stream() {
        // 21 ids, m = 2: L = 20 / 2 = 10, streams 0..10 and 10..20 (20 is only a target).
        let batches = StreamBatches::new((0..=20).collect(), 2, 3).unwrap();
        assert_eq!(
            (
                batches.batch_size(),
                batches.seq_len(),
                batches.stream_len()
            ),
            (2, 3, 10)
        );
        assert_eq!(batches.n_chunks(), 3);
        let c0 = batches.chunk(0);
        assert_eq!(
            c0.inputs,
            array![
                [Some(0), Some(10)],
                [Some(1), Some(11)],
                [Some(2), Some(12)]
            ]
        );
        assert_eq!(
            c0.targets,
            array![
                [Some(1), Some(11)],
                [Some(2), Some(12)],
                [Some(3), Some(13)]
            ]
        );
        let c1 = batches.chunk(1);
        assert_eq!(
            c1.inputs,
            array![
                [Some(3), Some(13)],
                [Some(4), Some(14)],
                [Some(5), Some(15)]
            ]
        );
        assert_eq!(
            c1.targets,
            array![
                [Some(4), Some(14)],
                [Some(5), Some(15)],
                [Some(6), Some(16)]
            ]
        );
        for j in 0..2 {
            // The first input of chunk 1 is the last target of chunk 0, in every stream.
            assert_eq!(c1.inputs[[0, j]], c0.targets[[2, j]]);
        }
        assert_eq!(c1.lengths, [3, 3]);
        assert_eq!(c1.n_targets(), 6);
        assert_eq!(batches.chunk(3), c0); // k wraps.
        assert_eq!(batches.iter().len(), 3);
    }

    #[test]
    fn short_streams_give_one_shorter_chunk() {
        let batches = StreamBatches::new((0..7).collect(), 3, 5).unwrap(); // L = 6 / 3 = 2
        assert_eq!((batches.n_chunks(), batches.seq_len()), (1, 2));
        let chunk = batches.chunk(0);
        assert_eq!(
            chunk.inputs,
            array![[Some(0), Some(2), Some(4)], [Some(1), Some(3), Some(5)]]
        );
        assert_eq!(
            chunk.targets,
            array![[Some(1), Some(3), Some(5)], [Some(2), Some(4), Some(6)]]
        );
    }

    #[test]
    fn bad_stream_parameters_are_typed_errors() {
        assert_eq!(
            StreamBatches::new(vec![0; 10], 0, 3),
            Err(BatchError::ZeroBatchSize)
        );
        assert_eq!(
            StreamBatches::new(vec![0; 10], 2, 0),
            Err(BatchError::ZeroSeqLen)
        );
        assert_eq!(
            StreamBatches::new(vec![], 1, 1),
            Err(BatchError::TooShort {
                n_ids: 0,
                batch_size: 1
            })
        );
        let err = StreamBatches::new(vec![0; 4], 4, 1).unwrap_err();
        assert_eq!(
            err,
            BatchError::TooShort {
                n_ids: 4,
                batch_size: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "4 token(s) are too few for 4 stream(s): need at least 5"
        );
        assert!(StreamBatches::new(vec![0; 5], 4, 1).is_ok());
    }

    proptest! {
        #[test]
        fn stream_targets_follow_inputs_in_the_text(n in 2usize..200, m in 1usize..8, t in 1usize..20) {
            let ids: Vec<TokenId> = (0..n as TokenId).collect();
            let Ok(batches) = StreamBatches::new(ids, m, t) else {
                prop_assert!(n < m + 1);
                return Ok(());
            };
            prop_assert!(batches.n_chunks() >= 1);
            prop_assert!(batches.n_chunks() * batches.seq_len() <= batches.stream_len());
            for k in 0..batches.n_chunks() {
                let chunk = batches.chunk(k);
                prop_assert_eq!(chunk.inputs.dim(), (batches.seq_len(), m));
                for (input, target) in chunk.inputs.iter().zip(&chunk.targets) {
                    prop_assert_eq!(input.map(|i| i + 1), *target);
                }
            }
        }
    }
}
