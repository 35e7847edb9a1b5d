//! Local full-text search of the stored history: every message whose text contains all words
//! of the query, in any order, ignoring case and accents. Nothing leaves the device; the web
//! app folds text the same way (`fold` in `web/src/app/messages.ts`: NFKD, marks removed,
//! lower case), so a query finds the same messages in both clients.

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

use crate::error::Result;
use crate::store::{Store, StoredMessage};

/// Longest query accepted, in characters (a query is a few words, not a document).
pub const MAX_QUERY_CHARS: usize = 256;

/// Compatibility-decomposed, marks removed, lower-cased: what search compares.
pub fn fold(text: &str) -> String {
    text.nfkd().filter(|c| !is_combining_mark(*c)).collect::<String>().to_lowercase()
}

/// The folded words of a query; empty when it has none.
pub fn query_words(query: &str) -> Vec<String> {
    fold(query).split_whitespace().map(str::to_owned).collect()
}

/// Does `text` contain every one of `words` (already folded)?
pub fn matches(words: &[String], text: &str) -> bool {
    let text = fold(text);
    !words.is_empty() && words.iter().all(|w| text.contains(w.as_str()))
}

/// The stored messages (direct and group, text only) matching `words`, newest first, at most
/// `limit`.
pub fn search(store: &Store, words: &[String], limit: usize) -> Result<Vec<StoredMessage>> {
    let mut hits: Vec<StoredMessage> =
        store.all_messages()?.into_iter().filter(|m| m.text().is_some_and(|t| matches(words, t))).collect();
    hits.sort_by_key(|m| std::cmp::Reverse((m.ts, m.stored_at)));
    hits.truncate(limit);
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_accents_and_compatibility_forms_are_ignored() {
        assert_eq!(fold("Crème BRÛLÉE"), "creme brulee");
        assert_eq!(fold("ﬁle"), "file"); // the ligature decomposes
        let words = query_words("  brulee   CREME ");
        assert_eq!(words, ["brulee", "creme"]);
        assert!(matches(&words, "Une crème brûlée, s'il vous plaît"));
        assert!(!matches(&words, "crème only"));
    }

    #[test]
    fn an_empty_query_matches_nothing() {
        assert!(query_words(" \t ").is_empty());
        assert!(!matches(&[], "anything"));
    }
}
