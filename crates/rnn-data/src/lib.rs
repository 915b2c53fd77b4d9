//! Vocabulary, corpora and batches.
