//! AMQP topic matching: a routing key and a binding key are `.`-separated words; in the binding
//! key `*` stands for exactly one word and `#` for zero or more words.
//!
//! Words are split as RabbitMQ splits them: the empty key has zero words, and every `.` separates
//! two words, so `a..b` is `a`, ``, `b` and `a.` is `a`, ``. An empty word is an ordinary literal.
//!
//! Patterns are compiled once, at bind time, into [`TopicPattern`]; matching one pattern is the
//! classic wildcard algorithm with a single backtrack point (the last `#` seen), so it allocates
//! nothing and is linear in the key for patterns with at most one `#`, O(words × pattern) at
//! worst. An exchange routes through a trie of its patterns' words instead
//! ([`super::topic_trie`]); [`TopicPattern::matches`] is the reference the trie is tested against
//! and what a single binding's check uses.

/// One word of a compiled binding key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Word {
    Literal(String),
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Any,
}

/// A binding key compiled for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern {
    words: Vec<Word>,
}

/// Splits a routing or binding key into words, as RabbitMQ does: `""` has no words.
pub fn split_words(key: &str) -> impl Iterator<Item = &str> {
    let words = if key.is_empty() {
        None
    } else {
        Some(key.split('.'))
    };
    words.into_iter().flatten()
}

impl TopicPattern {
    pub fn compile(binding_key: &str) -> Self {
        let mut words: Vec<Word> = Vec::new();
        for word in split_words(binding_key) {
            let word = match word {
                "*" => Word::One,
                "#" => Word::Any,
                literal => Word::Literal(literal.to_string()),
            };
            // `#.#` matches exactly what `#` matches; collapsing keeps the backtracking short.
            if word == Word::Any && words.last() == Some(&Word::Any) {
                continue;
            }
            words.push(word);
        }
        TopicPattern { words }
    }

    /// The compiled words, `#.#` collapsed to `#`: the trie's path for this pattern.
    pub(crate) fn words(&self) -> &[Word] {
        &self.words
    }

    /// Whether `routing_key` matches this pattern.
    pub fn matches(&self, routing_key: &str) -> bool {
        // A routing key is at most NAME_BYTES_MAX bytes, so at most 128 words: a stack buffer
        // would do, but a small Vec keeps this simple and the key's words are needed by index.
        let key: Vec<&str> = split_words(routing_key).collect();
        self.matches_words(&key)
    }

    fn matches_words(&self, key: &[&str]) -> bool {
        let pattern = &self.words;
        let (mut p, mut k) = (0, 0);
        // After a `#` at pattern index `hash`, the key position it has absorbed up to. On a
        // mismatch, let that `#` absorb one more word and retry: the latest `#` is the only one
        // worth re-trying, because any earlier `#` could only absorb words the later one can.
        let mut backtrack: Option<(usize, usize)> = None;
        while k < key.len() {
            match pattern.get(p) {
                Some(Word::Any) => {
                    backtrack = Some((p, k));
                    p += 1;
                    continue;
                }
                Some(Word::One) => {
                    p += 1;
                    k += 1;
                    continue;
                }
                Some(Word::Literal(word)) if word == key[k] => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((hash, absorbed)) => {
                    backtrack = Some((hash, absorbed + 1));
                    p = hash + 1;
                    k = absorbed + 1;
                }
                None => return false,
            }
        }
        pattern[p..].iter().all(|word| *word == Word::Any)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        TopicPattern::compile(pattern).matches(key)
    }

    /// The specification, written as directly as possible.
    fn reference(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => {
                reference(rest, key) || (!key.is_empty() && reference(pattern, &key[1..]))
            }
            Some((&"*", rest)) => !key.is_empty() && reference(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && reference(rest, &key[1..]),
        }
    }

    #[test]
    fn literals() {
        assert!(matches("a.b.c", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b.d"));
        assert!(!matches("abc", "ab"));
        assert!(matches("stock.usd.nyse", "stock.usd.nyse"));
    }

    #[test]
    fn star_is_exactly_one_word() {
        assert!(matches("*", "a"));
        assert!(!matches("*", ""));
        assert!(!matches("*", "a.b"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("*.b.*", "a.b.c"));
        assert!(matches("*.*", "a."), "an empty word is still a word");
        assert!(matches("a.*.c", "a..c"));
    }

    #[test]
    fn hash_alone_matches_everything() {
        for key in ["", "a", "a.b.c", ".", "..", "a..b", "#", "*"] {
            assert!(matches("#", key), "{key:?}");
        }
    }

    #[test]
    fn hash_is_zero_or_more_words() {
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b"));
        assert!(matches("a.#", "a.b.c"));
        assert!(!matches("a.#", "b.a"));
        assert!(matches("#.a", "a"));
        assert!(matches("#.a", "x.y.a"));
        assert!(!matches("#.a", "a.x"));
        assert!(matches("a.#.b", "a.b"));
        assert!(matches("a.#.b", "a.x.b"));
        assert!(matches("a.#.b", "a.x.y.b"));
        assert!(matches("a.#.b", "a.b.b"));
        assert!(!matches("a.#.b", "a.b.c"));
        assert!(!matches("a.#.b", "b.a.b"));
        assert!(matches("#.b.#", "b"));
        assert!(matches("#.b.#", "a.b.c"));
        assert!(!matches("#.b.#", "a.c"));
    }

    #[test]
    fn hash_and_star_combine() {
        assert!(matches("#.*", "a"));
        assert!(!matches("#.*", ""));
        assert!(matches("*.#", "a.b.c"));
        assert!(matches("#.*.#", "a"));
        assert!(!matches("*.*.#", "a"));
        assert!(matches("a.#.*.c", "a.b.c"));
        assert!(!matches("a.#.*.c", "a.c"));
        assert!(matches("#.#", ""));
        assert!(matches("#.#.#", "a.b"));
    }

    #[test]
    fn empty_key_and_empty_pattern() {
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("a", ""));
        assert!(matches("#", ""));
        assert!(!matches("", "."), "`.` is two empty words");
        assert!(matches("*.*", "."));
    }

    #[test]
    fn empty_words_are_literals() {
        assert!(matches("a..b", "a..b"));
        assert!(!matches("a..b", "a.b"));
        assert!(!matches("a.b", "a..b"));
        assert!(matches("a.#.b", "a..b"));
        assert!(matches("a.", "a."));
        assert!(!matches("a.", "a"));
        assert!(matches(".a", ".a"));
        assert!(!matches(".a", "a"));
    }

    #[test]
    fn wildcards_inside_words_are_literals() {
        assert!(matches("a*", "a*"));
        assert!(!matches("a*", "ab"));
        assert!(!matches("a#", "a.b"));
        assert!(matches("#a", "#a"));
    }

    #[test]
    fn consecutive_hashes_collapse() {
        assert_eq!(
            TopicPattern::compile("a.#.#.#.b"),
            TopicPattern::compile("a.#.b")
        );
        assert_ne!(TopicPattern::compile("#.*.#"), TopicPattern::compile("#.#"));
    }

    #[test]
    fn pathological_pattern_stays_fast() {
        let pattern = "#.a.#.a.#.a.#.a.#.a.#.b";
        let key = vec!["a"; 120].join(".");
        assert!(!matches(pattern, &key));
        assert!(matches(pattern, &format!("{key}.b")));
    }

    fn words(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(alphabet), 0..8).prop_map(|w| w.join("."))
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            pattern in words(&["a", "b", "", "*", "#"]),
            key in words(&["a", "b", "", "*", "#"]),
        ) {
            let p: Vec<&str> = split_words(&pattern).collect();
            let k: Vec<&str> = split_words(&key).collect();
            prop_assert_eq!(matches(&pattern, &key), reference(&p, &k));
        }
    }
}
