//! A validating JSON scanner: is a byte string one JSON text (RFC 8259)? The archive asks this of
//! every row image to choose its column (`before`/`after` for JSON, `*_bin` otherwise), so it is
//! on the hot path: one pass, no allocation, no recursion.
//!
//! It accepts exactly what `serde_json::from_str::<serde::de::IgnoredAny>` accepts, after a UTF-8
//! check, on any bytes (the property tests below check that against serde_json): UTF-8 (checked
//! here, where it can occur: non-ASCII bytes are valid only inside strings), the same whitespace, escapes
//! (`\u` needs four hex digits; surrogates are not paired, as in serde_json when it ignores a
//! value), numbers and literals, and any nesting depth (serde_json ignores a value without a
//! recursion limit; the nesting stack here grows with the input, one entry per opening bracket).

/// Nesting levels kept without allocating; deeper ones go to a `Vec`.
const INLINE_DEPTH: usize = u64::BITS as usize;

/// What a byte class means to the string scanner: 0 = ordinary (ASCII), 1 = end or escape or
/// control or the start of a non-ASCII character.
const STRING_STOP: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        if b < 0x20 || b >= 0x80 {
            table[b] = 1;
        }
        b += 1;
    }
    table[b'"' as usize] = 1;
    table[b'\\' as usize] = 1;
    table
};

/// Eight bytes (little-endian: the first byte lowest) → the high bit of each byte that
/// [`STRING_STOP`] marks. Exact for the lowest marked byte, which is all the scanner uses: the
/// subtractions below borrow only out of a byte that is itself marked, so a byte above it may be
/// marked wrongly, never one below.
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero → its high bit in `(x - 1) & !x`.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    // Bytes below 0x20: subtracting 0x20 sets the high bit of a byte that was below it (the
    // `!word` term drops bytes that already had it: those are non-ASCII, marked below).
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control | word) & HIGH
}

/// Whether `bytes` is one JSON text (surrounded by optional whitespace) in UTF-8.
pub fn is_json(bytes: &[u8]) -> bool {
    let mut scanner = Scanner { bytes, pos: 0 };
    scanner.text().is_some()
}

/// The length of the valid UTF-8 multi-byte character `bytes` starts with; `None` if it starts
/// with anything else (a stray continuation byte, an overlong form, a surrogate, a code point past
/// U+10FFFF, a cut sequence). Non-ASCII text is rare in row images; std judges the character.
fn utf8_char_len(bytes: &[u8]) -> Option<usize> {
    let len = match bytes.first()? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    std::str::from_utf8(bytes.get(..len)?).ok().map(|_| len)
}

/// The containers a scanner is inside of, innermost last: one bit per level for the first
/// [`INLINE_DEPTH`] (set = object), a `Vec` beyond.
struct Stack {
    inline: u64,
    deeper: Vec<Container>,
}

impl Stack {
    #[inline(always)]
    fn set(&mut self, level: usize, container: Container) {
        if level < INLINE_DEPTH {
            let bit = 1u64 << level;
            if container == Container::Object { self.inline |= bit } else { self.inline &= !bit }
        } else {
            self.deeper.truncate(level - INLINE_DEPTH);
            self.deeper.push(container);
        }
    }

    #[inline(always)]
    fn get(&self, level: usize) -> Container {
        if level < INLINE_DEPTH {
            if self.inline >> level & 1 == 1 { Container::Object } else { Container::Array }
        } else {
            self.deeper[level - INLINE_DEPTH]
        }
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// The container a scanner is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

impl Scanner<'_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                // One leading zero only.
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// A string, the opening quote already consumed.
    #[inline(always)]
    fn string_rest(&mut self) -> Option<()> {
        loop {
            // Skip ordinary bytes eight at a time, then one at a time near the end; `stop` is
            // the byte at `pos` that ends the run.
            let stop = loop {
                let Some(word) = self.bytes.get(self.pos..self.pos + 8) else {
                    while STRING_STOP[*self.bytes.get(self.pos)? as usize] == 0 {
                        self.pos += 1;
                    }
                    break self.bytes[self.pos];
                };
                let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
                let stops = string_stops(word);
                if stops != 0 {
                    let skipped = stops.trailing_zeros() / 8;
                    self.pos += skipped as usize;
                    break (word >> (skipped * 8)) as u8;
                }
                self.pos += 8;
            };
            debug_assert_eq!(stop, self.bytes[self.pos]);
            match stop {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.pos += 5;
                        }
                        _ => return None,
                    }
                }
                b if b >= 0x80 => self.pos += utf8_char_len(&self.bytes[self.pos..])?,
                _ => return None, // a control character
            }
        }
    }

    /// One JSON text: a value between optional whitespace, nothing after it.
    fn text(&mut self) -> Option<()> {
        let mut stack = Stack { inline: 0, deeper: Vec::new() };
        let mut depth = 0usize;
        self.skip_whitespace();
        'value: loop {
            // A value starts here.
            match self.peek()? {
                b'{' | b'[' => {
                    let container = if self.bytes[self.pos] == b'{' { Container::Object } else { Container::Array };
                    stack.set(depth, container);
                    depth += 1;
                    self.pos += 1;
                    self.skip_whitespace();
                    let close = if container == Container::Object { b'}' } else { b']' };
                    if self.eat(close).is_none() {
                        if container == Container::Object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    depth -= 1;
                }
                b'"' => {
                    self.pos += 1;
                    self.string_rest()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // A value ended: continue or close the containers it ends.
            loop {
                self.skip_whitespace();
                if depth == 0 {
                    return (self.pos == self.bytes.len()).then_some(());
                }
                let container = stack.get(depth - 1);
                let close = if container == Container::Object { b'}' } else { b']' };
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.skip_whitespace();
                        if container == Container::Object {
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    b if b == close => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` and the whitespace after it (before the member's value).
    #[inline(always)]
    fn member_key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string_rest()?;
        self.skip_whitespace();
        self.eat(b':')?;
        self.skip_whitespace();
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde_says(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
    }

    fn agrees(bytes: &[u8]) {
        assert_eq!(is_json(bytes), serde_says(bytes), "{bytes:?}: {:?}", String::from_utf8_lossy(bytes));
    }

    #[test]
    fn the_word_scan_marks_every_stop_byte_at_every_place() {
        for place in 0..8 {
            for byte in 0..=255u8 {
                let mut word = *b"abcdefgh";
                word[place] = byte;
                let stops = string_stops(u64::from_le_bytes(word));
                let expected = (STRING_STOP[byte as usize] == 1).then_some(place);
                let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
                assert_eq!(found, expected, "byte {byte:#04x} at {place}");
            }
        }
    }

    #[test]
    fn non_utf8_is_not_json() {
        let cases: &[&[u8]] = &[
            b"\"\xff\"",
            b"\"\x80\"",
            b"\"\xc3\"",
            b"\"\xc3\x28\"",
            b"\"\xc0\xaf\"",         // overlong '/'
            b"\"\xe0\x80\xaf\"",     // overlong
            b"\"\xed\xa0\x80\"",     // a surrogate
            b"\"\xf4\x90\x80\x80\"", // past U+10FFFF
            b"\"\xf0\x9f\x98\"",     // cut short
            b"{\"k\xe9\":1}",        // Latin-1
            b"[1,\xc3\xa9]",         // valid UTF-8 outside a string
            b"\xef\xbb\xbf{}",       // a byte-order mark
        ];
        for case in cases {
            agrees(case);
            assert!(!is_json(case), "{case:?}");
        }
        for ok in
            ["\"é\"", "\"€\"", "\"😀\"", "{\"ключ\":\"значение\"}", "[\"\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}\"]"]
        {
            assert!(is_json(ok.as_bytes()), "{ok}");
            agrees(ok.as_bytes());
        }
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        let cases: &[&str] = &[
            "",
            " ",
            "{}",
            "[]",
            " {} ",
            "{\"a\":1}",
            "{\"a\" : [1, 2.5, -0, 1e5, 1E+5, 1e-5, true, false, null]}",
            "42",
            "-",
            "-0",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "\"\"",
            "\"\\u00e9\"",
            "\"\\u00g9\"",
            "\"\\ud800\"",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "[1,]",
            "[,1]",
            "{\"a\":}",
            "{\"a\"}",
            "{,}",
            "{\"a\":1,}",
            "[1 2]",
            "{} {}",
            "tru",
            "truex",
            "nul",
            "[\"a\"]x",
            "\u{feff}{}",
            "{\"a\":{\"b\":[{}]}}",
            "[[[]]]",
            "]",
            "[",
            "{",
            "\"",
            "\"\\",
            "\"\\u12",
            "1 ",
            "\n[\r\t]\n",
            "{\"é\":\"ü\"}",
            "0.0e0",
            "-01",
            "[-]",
            "1.5e3.2",
        ];
        for case in cases {
            agrees(case.as_bytes());
        }
    }

    #[test]
    fn any_nesting_depth_is_judged_like_serde_json() {
        for depth in [INLINE_DEPTH - 1, INLINE_DEPTH, INLINE_DEPTH + 1, 127, 128, 129, 1000, 5000] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            agrees(arrays.as_bytes());
            let objects = format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
            agrees(objects.as_bytes());
        }
        // Mixed containers across the inline/allocated boundary, closed in the wrong order.
        let mixed = format!("{}{}", "[{\"k\":".repeat(40), "}]".repeat(40).replacen("}]", "]}", 1));
        agrees(mixed.as_bytes());
        let deep = format!("{}1{}", "[{\"k\":".repeat(40), "}]".repeat(40));
        assert!(is_json(deep.as_bytes()));
        agrees(deep.as_bytes());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f)),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn serialized_values_are_json(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            let text = text.expect("serializes");
            prop_assert!(is_json(text.as_bytes()), "{text}");
        }

        #[test]
        fn mutated_json_is_judged_like_serde_json(
            value in json_value(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(
                b" \t\n,:[]{}\"\\/-+.0123456789eEtrufalsn\x01ab".to_vec())), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut bytes = serde_json::to_vec(&value).expect("serializes");
            for (at, byte) in &edits {
                let at = at.index(bytes.len() + 1);
                if at < bytes.len() && at % 2 == 0 {
                    bytes[at] = *byte;
                } else {
                    bytes.insert(at.min(bytes.len()), *byte);
                }
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            agrees(&bytes);
        }

        #[test]
        fn arbitrary_bytes_in_strings_are_judged_like_serde_json(
            value in json_value(),
            at in any::<prop::sample::Index>(),
            junk in prop::collection::vec(any::<u8>(), 1..6),
        ) {
            let mut bytes = serde_json::to_vec(&value).expect("serializes");
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, junk);
            agrees(&bytes);
        }

        #[test]
        fn the_word_scan_finds_the_first_stop_like_the_table(
            word in prop::array::uniform8(prop::sample::select(
                b"\x00\x01\x1f \x21\"#[\\]az\x7f\x80\xa0\xc3\xff".to_vec())),
        ) {
            let first = word.iter().position(|&b| STRING_STOP[b as usize] == 1);
            let stops = string_stops(u64::from_le_bytes(word));
            let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
            prop_assert_eq!(found, first, "{:?}", word);
        }

        #[test]
        fn random_text_is_judged_like_serde_json(text in "[ \\t\\n{}\\[\\],:\"\\\\a-fu0-9.eE+\\-tnrl]{0,40}") {
            agrees(text.as_bytes());
        }
    }
}
