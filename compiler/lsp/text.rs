//! Positions: byte offsets (the compiler's spans) ↔ LSP line/character, in the
//! encoding agreed at `initialize` (UTF-16 unless the client offers UTF-8).

use lsp_types::{Position, Range};

/// How the client counts characters within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

/// The start of every line of one text.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The position of byte `offset` (clamped to the text, and back to a
    /// character boundary).
    pub fn position(&self, text: &str, offset: usize, enc: Encoding) -> Position {
        let mut offset = offset.min(text.len());
        while offset > 0 && !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col = match enc {
            Encoding::Utf8 => offset - start,
            Encoding::Utf16 => text[start..offset].encode_utf16().count(),
        };
        Position::new(line as u32, col as u32)
    }

    pub fn range(&self, text: &str, start: usize, end: usize, enc: Encoding) -> Range {
        Range::new(
            self.position(text, start, enc),
            self.position(text, end, enc),
        )
    }

    /// The byte offset of a position; a line past the end is the end of the text,
    /// a character past the end of its line is the line's end.
    pub fn offset(&self, text: &str, pos: Position, enc: Encoding) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map(|e| e - 1)
            .unwrap_or(text.len());
        let line = &text[start..end];
        let want = pos.character as usize;
        match enc {
            Encoding::Utf8 => {
                let mut o = want.min(line.len());
                while o > 0 && !line.is_char_boundary(o) {
                    o -= 1;
                }
                start + o
            }
            Encoding::Utf16 => {
                let mut units = 0;
                for (i, c) in line.char_indices() {
                    if units >= want {
                        return start + i;
                    }
                    units += c.len_utf16();
                }
                end
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_encodings() {
        let text = "host a {\n  x = \"é𝄞z\"\n}";
        let ix = LineIndex::new(text);
        for enc in [Encoding::Utf8, Encoding::Utf16] {
            for (o, _) in text.char_indices() {
                let p = ix.position(text, o, enc);
                assert_eq!(ix.offset(text, p, enc), o, "{enc:?} offset {o} at {p:?}");
            }
        }
        let z = text.find('z').unwrap();
        assert_eq!(ix.position(text, z, Encoding::Utf16), Position::new(1, 10));
        assert_eq!(ix.position(text, z, Encoding::Utf8), Position::new(1, 13));
        // past the end: clamped
        assert_eq!(
            ix.offset(text, Position::new(9, 0), Encoding::Utf16),
            text.len()
        );
        assert_eq!(ix.offset(text, Position::new(0, 99), Encoding::Utf16), 8);
    }
}
