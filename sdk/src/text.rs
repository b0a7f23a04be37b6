//! Text matching for policies: which phrases a prompt excerpt mentions.

use std::borrow::Cow;

/// Whether `text` contains any of `phrases`, ignoring case (as `str::to_lowercase` on both sides
/// would), in one pass over `text`.
///
/// Lowercasing 2 KiB of prompt and searching it once per phrase (a searcher set-up and a scan
/// each) made a long prompt's decision twice as slow as a short one's. Here the text is only
/// lowercased when it is not ASCII; two 256-entry tables say which phrases start with each byte
/// (either case) and have each byte second, so most positions are rejected with two lookups and
/// only real candidates are compared. (`aho-corasick` would do the same job, but built afresh
/// in every decision's instance and carried in every guest, for a handful of phrases.)
pub fn contains_any_ignoring_case<P: AsRef<str>>(text: &str, phrases: &[P]) -> bool {
    let folded;
    let text = if text.is_ascii() {
        text.as_bytes()
    } else {
        folded = text.to_lowercase();
        folded.as_bytes()
    };
    // Lowercased phrases hold no ASCII capitals, so an ASCII-case-insensitive comparison with
    // them equals an exact comparison with the lowercased text. Phrases are usually written in
    // lowercase ASCII already, and are then used as they are (lowercasing a config's dozen
    // phrases on every decision cost as much as the search).
    let phrases: Vec<Cow<'_, str>> = phrases
        .iter()
        .map(|p| {
            let p = p.as_ref();
            if p.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                Cow::Borrowed(p)
            } else {
                Cow::Owned(p.to_lowercase())
            }
        })
        .collect();
    for chunk in phrases.chunks(64) {
        let mut first = [0u64; 256];
        let mut second = [0u64; 256];
        for (i, phrase) in chunk.iter().enumerate() {
            match phrase.as_bytes() {
                [] => return true,
                [only] => {
                    if text.iter().any(|b| b.eq_ignore_ascii_case(only)) {
                        return true;
                    }
                }
                [a, b, ..] => {
                    for (table, byte) in [(&mut first, a), (&mut second, b)] {
                        table[byte.to_ascii_lowercase() as usize] |= 1 << i;
                        table[byte.to_ascii_uppercase() as usize] |= 1 << i;
                    }
                }
            }
        }
        for (at, pair) in text.windows(2).enumerate() {
            let mut candidates = first[pair[0] as usize] & second[pair[1] as usize];
            while candidates != 0 {
                let phrase = chunk[candidates.trailing_zeros() as usize].as_bytes();
                if text[at..]
                    .get(..phrase.len())
                    .is_some_and(|window| window.eq_ignore_ascii_case(phrase))
                {
                    return true;
                }
                candidates &= candidates - 1;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_any_agrees_with_lowercasing_and_searching_each_phrase() {
        // A small deterministic generator over a tiny alphabet, so matches are frequent.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        fn word(next: &mut impl FnMut(u64) -> u64, max: u64) -> String {
            let len = next(max + 1);
            (0..len)
                .map(|_| ["a", "B", "b", " ", "é", "É", "K"][next(7) as usize])
                .collect()
        }
        for _ in 0..20_000 {
            let text = word(&mut next, 40);
            let count = next(5);
            let phrases: Vec<String> = (0..count).map(|_| word(&mut next, 4)).collect();
            let expected = phrases
                .iter()
                .any(|p| text.to_lowercase().contains(&p.to_lowercase()));
            assert_eq!(
                contains_any_ignoring_case(&text, &phrases),
                expected,
                "{text:?} {phrases:?}"
            );
        }
        // More phrases than one table chunk holds.
        let many: Vec<String> = (0..150).map(|i| format!("phrase number {i}")).collect();
        assert!(contains_any_ignoring_case(
            "... see Phrase Number 149 here",
            &many
        ));
        assert!(!contains_any_ignoring_case("phrase number", &many));
        assert!(contains_any_ignoring_case("ÜBER ALLES", &["über"]));
    }
}
