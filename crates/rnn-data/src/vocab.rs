//! The character vocabulary: a deterministic bijection between characters and token ids.

use std::collections::BTreeSet;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The id of a character in a [`Vocab`]: an index in `0..vocab.len()`.
pub type TokenId = u32;

/// A character vocabulary.
///
/// The order is deterministic: characters are sorted by code point, except that `'\n'`, when
/// present, always has id 0. So the classic alphabet `'\n', 'a'..='z'` maps to `0..=26`, and the
/// newline (the end-of-name token of the post) stays at 0 whatever other characters appear.
///
/// A vocabulary is never empty. It serializes as the list of its characters in id order;
/// deserialization checks that list (non-empty, no duplicates, the order above) and fails
/// otherwise, so a checkpoint cannot smuggle in an inconsistent vocabulary.
///
/// # Examples
///
/// ```
/// use rnn_data::Vocab;
///
/// let vocab = Vocab::from_text("hello\n")?;
/// assert_eq!(vocab.chars(), &['\n', 'e', 'h', 'l', 'o']);
/// let ids = vocab.encode("hole")?;
/// assert_eq!(ids, [2, 4, 3, 1]);
/// assert_eq!(vocab.decode(&ids)?, "hole");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<char>", into = "Vec<char>")]
pub struct Vocab {
    /// The characters in id order; `chars[id]` is the character of `id`.
    chars: Vec<char>,
}

/// Why a [`Vocab`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum VocabError {
    /// There were no characters at all.
    #[error("empty vocabulary: no characters given")]
    Empty,
    /// A character appears twice in an explicit character list.
    #[error("vocabulary lists {ch:?} twice (second time at id {position})")]
    Duplicate {
        /// The repeated character.
        ch: char,
        /// The id at which it appears the second time.
        position: usize,
    },
    /// An explicit character list is not in vocabulary order.
    #[error(
        "vocabulary is not sorted: {ch:?} at id {position} comes before the character preceding it"
    )]
    Unsorted {
        /// The character that is out of order.
        ch: char,
        /// Its id in the given list.
        position: usize,
    },
    /// An explicit character list has `'\n'` somewhere other than id 0.
    #[error("vocabulary has '\\n' at id {position}; it must be id 0")]
    NewlineNotFirst {
        /// Where the newline was found.
        position: usize,
    },
}

/// A character of the text is not in the vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// `ch`, at character index `position` of the encoded text, has no id.
    #[error("unknown character {ch:?} at character {position}")]
    UnknownChar {
        /// The character that is missing from the vocabulary.
        ch: char,
        /// Its index, counted in characters (not bytes), in the encoded text.
        position: usize,
    },
}

/// A token id is out of range for the vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// `id`, at index `position` of the id sequence, is `>= vocab.len()`.
    #[error("unknown token id {id} at position {position}")]
    UnknownId {
        /// The offending id.
        id: TokenId,
        /// Its index in the id sequence.
        position: usize,
    },
}

impl Vocab {
    /// Builds the vocabulary of every distinct character of `text`.
    ///
    /// # Errors
    ///
    /// [`VocabError::Empty`] if `text` is empty.
    pub fn from_text(text: &str) -> Result<Vocab, VocabError> {
        Vocab::from_chars(text.chars())
    }

    /// Builds a vocabulary from any characters: duplicates are dropped and the rest put in
    /// vocabulary order (newline first, then by code point).
    ///
    /// # Errors
    ///
    /// [`VocabError::Empty`] if there are no characters.
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> Result<Vocab, VocabError> {
        let chars = canonical_order(chars);
        if chars.is_empty() {
            return Err(VocabError::Empty);
        }
        Ok(Vocab { chars })
    }

    /// The number of characters, `n_x` (= `n_y`) in the post's notation.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Always `false`: a vocabulary has at least one character. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<TokenId> {
        let rest_start = usize::from(self.chars.first() == Some(&'\n'));
        let index = if c == '\n' {
            (rest_start == 1).then_some(0)?
        } else {
            rest_start + self.chars[rest_start..].binary_search(&c).ok()?
        };
        // A vocabulary holds at most 0x110000 distinct characters, so the index fits a `TokenId`.
        Some(index as TokenId)
    }

    /// The character of `id`, if `id < self.len()`.
    pub fn char(&self, id: TokenId) -> Option<char> {
        let index = usize::try_from(id).ok()?;
        self.chars.get(index).copied()
    }

    /// The id of `'\n'` (always 0), if the vocabulary has a newline.
    pub fn newline_id(&self) -> Option<TokenId> {
        self.id('\n')
    }

    /// Maps each character of `text` to its id.
    ///
    /// # Errors
    ///
    /// [`EncodeError::UnknownChar`] for the first character without an id, with its character index.
    pub fn encode(&self, text: &str) -> Result<Vec<TokenId>, EncodeError> {
        text.chars()
            .enumerate()
            .map(|(position, ch)| self.id(ch).ok_or(EncodeError::UnknownChar { ch, position }))
            .collect()
    }

    /// Maps each id back to its character.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownId`] for the first id that is out of range, with its index.
    pub fn decode(&self, ids: &[TokenId]) -> Result<String, DecodeError> {
        ids.iter()
            .enumerate()
            .map(|(position, &id)| self.char(id).ok_or(DecodeError::UnknownId { id, position }))
            .collect()
    }

    /// One-hot columns for a batch of ids: column `j` is the one-hot vector of `ids[j]`, or all
    /// zeros for `None` ("no input", as at the first step of a name).
    ///
    /// The model applies one-hot inputs as a column gather and does not need this; it is here for
    /// the dense reference computation, tests and plots.
    ///
    /// # Shapes
    ///
    /// `ids`: `m` entries; result: `(n_x, m)` with `n_x = self.len()`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownId`] for the first id that is out of range.
    // ANCHOR: one_hot
    pub fn one_hot<F>(&self, ids: &[Option<TokenId>]) -> Result<Array2<F>, DecodeError>
    where
        F: num_traits::Zero + num_traits::One + Clone,
    {
        let mut x = Array2::<F>::zeros((self.len(), ids.len())); // (n_x, m)
        for (position, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let row = usize::try_from(id)
                .ok()
                .filter(|&row| row < self.len())
                .ok_or(DecodeError::UnknownId { id, position })?;
            x[[row, position]] = F::one();
        }
        Ok(x)
    }
    // ANCHOR_END: one_hot

    /// The vocabulary of characters known to be non-empty, such as those of a loaded corpus.
    pub(crate) fn from_nonempty_chars(chars: impl IntoIterator<Item = char>) -> Vocab {
        let chars = canonical_order(chars);
        debug_assert!(!chars.is_empty());
        Vocab { chars }
    }
}

/// The distinct characters in vocabulary order: `'\n'` first if present, then by code point.
fn canonical_order(chars: impl IntoIterator<Item = char>) -> Vec<char> {
    let set: BTreeSet<char> = chars.into_iter().collect();
    // '\0'..'\t' sort before '\n' by code point, so move the newline to the front explicitly.
    let newline = set.contains(&'\n').then_some('\n');
    newline
        .into_iter()
        .chain(set.into_iter().filter(|&c| c != '\n'))
        .collect()
}

/// Checks an explicit character list in id order, as stored in a checkpoint.
///
/// Unlike [`Vocab::from_chars`], nothing is sorted or dropped: the list must already be in
/// vocabulary order, so that ids read back mean what they meant when they were saved.
impl TryFrom<Vec<char>> for Vocab {
    type Error = VocabError;

    fn try_from(chars: Vec<char>) -> Result<Vocab, VocabError> {
        if chars.is_empty() {
            return Err(VocabError::Empty);
        }
        for (position, pair) in chars.windows(2).enumerate() {
            let (prev, ch, position) = (pair[0], pair[1], position + 1);
            if ch == '\n' {
                return Err(VocabError::NewlineNotFirst { position });
            }
            if ch == prev {
                return Err(VocabError::Duplicate { ch, position });
            }
            if prev != '\n' && ch < prev {
                return Err(VocabError::Unsorted { ch, position });
            }
        }
        Ok(Vocab { chars })
    }
}

impl From<Vocab> for Vec<char> {
    fn from(vocab: Vocab) -> Vec<char> {
        vocab.chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alphabet() -> Vocab {
        Vocab::from_text("\nabcdefghijklmnopqrstuvwxyz").unwrap()
    }

    #[test]
    fn classic_alphabet_maps_newline_to_zero_and_letters_after() {
        let vocab = alphabet();
        assert_eq!(vocab.len(), 27);
        assert_eq!(vocab.id('\n'), Some(0));
        assert_eq!(vocab.id('a'), Some(1));
        assert_eq!(vocab.id('z'), Some(26));
        assert_eq!(vocab.char(26), Some('z'));
        assert_eq!(vocab.newline_id(), Some(0));
        assert_eq!(vocab.id('A'), None);
        assert_eq!(vocab.char(27), None);
    }

    #[test]
    fn newline_stays_first_even_after_smaller_code_points() {
        // '\t' (9) and '\0' sort before '\n' (10) by code point.
        let vocab = Vocab::from_text("b\ta\n\0").unwrap();
        assert_eq!(vocab.chars(), &['\n', '\0', '\t', 'a', 'b']);
        assert_eq!(vocab.id('\n'), Some(0));
        assert_eq!(vocab.id('\t'), Some(2));
    }

    #[test]
    fn without_newline_ids_follow_code_points() {
        let vocab = Vocab::from_chars("cabbage".chars()).unwrap();
        assert_eq!(vocab.chars(), &['a', 'b', 'c', 'e', 'g']);
        assert_eq!(vocab.newline_id(), None);
        assert_eq!(vocab.id('\n'), None);
        assert!(!vocab.is_empty());
    }

    #[test]
    fn empty_text_is_an_error() {
        assert_eq!(Vocab::from_text(""), Err(VocabError::Empty));
        assert_eq!(Vocab::from_chars([]), Err(VocabError::Empty));
    }

    #[test]
    fn encode_decode_round_trip() {
        let vocab = alphabet();
        let ids = vocab.encode("abz\n").unwrap();
        assert_eq!(ids, [1, 2, 26, 0]);
        assert_eq!(vocab.decode(&ids).unwrap(), "abz\n");
    }

    #[test]
    fn unknown_char_error_names_char_and_char_position() {
        let vocab = alphabet();
        // 'é' is two bytes; the position counts characters.
        let err = vocab.encode("éa?").unwrap_err();
        assert_eq!(
            err,
            EncodeError::UnknownChar {
                ch: 'é',
                position: 0
            }
        );
        let err = vocab.encode("ab?").unwrap_err();
        assert_eq!(
            err,
            EncodeError::UnknownChar {
                ch: '?',
                position: 2
            }
        );
        assert_eq!(err.to_string(), "unknown character '?' at character 2");
    }

    #[test]
    fn decode_unknown_id_is_an_error() {
        let err = alphabet().decode(&[1, 2, 27]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownId {
                id: 27,
                position: 2
            }
        );
        assert_eq!(err.to_string(), "unknown token id 27 at position 2");
    }

    #[test]
    fn one_hot_has_one_column_per_id_and_zero_columns_for_none() {
        let vocab = Vocab::from_text("\nabc").unwrap();
        let x: Array2<f64> = vocab.one_hot(&[None, Some(1), Some(3), Some(1)]).unwrap();
        assert_eq!(x.dim(), (4, 4));
        let expected = ndarray::array![
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
        ];
        assert_eq!(x, expected);
    }

    #[test]
    fn one_hot_rejects_out_of_range_ids() {
        let vocab = Vocab::from_text("ab").unwrap();
        let err = vocab.one_hot::<f32>(&[Some(0), Some(2)]).unwrap_err();
        assert_eq!(err, DecodeError::UnknownId { id: 2, position: 1 });
        let empty: Array2<f32> = vocab.one_hot(&[]).unwrap();
        assert_eq!(empty.dim(), (2, 0));
    }

    #[test]
    fn serde_uses_the_char_list() {
        let vocab = Vocab::from_text("ba\n").unwrap();
        let json = serde_json::to_string(&vocab).unwrap();
        assert_eq!(json, r#"["\n","a","b"]"#);
        assert_eq!(serde_json::from_str::<Vocab>(&json).unwrap(), vocab);
    }

    #[test]
    fn deserializing_a_bad_char_list_fails() {
        for (json, expected) in [
            (r#"[]"#, VocabError::Empty),
            (
                r#"["b","a"]"#,
                VocabError::Unsorted {
                    ch: 'a',
                    position: 1,
                },
            ),
            (
                r#"["a","a"]"#,
                VocabError::Duplicate {
                    ch: 'a',
                    position: 1,
                },
            ),
            (r#"["a","\n"]"#, VocabError::NewlineNotFirst { position: 1 }),
            (
                r#"["\n","\n"]"#,
                VocabError::NewlineNotFirst { position: 1 },
            ),
        ] {
            let err = serde_json::from_str::<Vocab>(json).unwrap_err();
            assert_eq!(err.to_string(), expected.to_string(), "for {json}");
        }
        // A newline first, then a smaller code point, is the valid order.
        assert!(serde_json::from_str::<Vocab>(r#"["\n","\t","a"]"#).is_ok());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips_any_string(text in any::<String>()) {
            prop_assume!(!text.is_empty());
            let vocab = Vocab::from_text(&text).unwrap();
            let ids = vocab.encode(&text).unwrap();
            prop_assert_eq!(ids.len(), text.chars().count());
            prop_assert!(ids.iter().all(|&id| (id as usize) < vocab.len()));
            prop_assert_eq!(vocab.decode(&ids).unwrap(), text);
        }

        #[test]
        fn serde_round_trips(chars in proptest::collection::vec(any::<char>(), 1..50)) {
            let vocab = Vocab::from_chars(chars).unwrap();
            let json = serde_json::to_string(&vocab).unwrap();
            prop_assert_eq!(serde_json::from_str::<Vocab>(&json).unwrap(), vocab);
        }

        #[test]
        fn deserialization_accepts_exactly_the_canonical_order(
            chars in proptest::collection::vec(any::<char>(), 1..20),
        ) {
            let canonical = Vocab::from_chars(chars.clone()).unwrap();
            let json = serde_json::to_string(&chars).unwrap();
            let parsed = serde_json::from_str::<Vocab>(&json);
            if chars.as_slice() == canonical.chars() {
                prop_assert_eq!(parsed.unwrap(), canonical);
            } else {
                prop_assert!(parsed.is_err());
            }
        }
    }
}
