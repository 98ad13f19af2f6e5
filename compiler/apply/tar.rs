//! A minimal POSIX tar (ustar + pax `path` records) writer: the payload of an
//! apply travels as one archive, unpacked on the host by one `tar -x` process.
//! Entries are regular files only, owned by root, mode and mtime fixed by the
//! caller, so the same inputs give the same bytes.

const BLOCK: usize = 512;

/// An archive being written.
#[derive(Default)]
pub struct Tar {
    out: Vec<u8>,
}

fn octal(field: &mut [u8], value: u64) {
    // width-1 octal digits, zero padded, NUL terminated
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    let s = s.as_bytes();
    let s = &s[s.len().saturating_sub(digits)..];
    field[..s.len()].copy_from_slice(s);
    field[digits] = 0;
}

fn header(name: &[u8], mode: u32, size: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    // checksum: sum of all bytes with the checksum field as spaces
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    fn data(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.extend(std::iter::repeat_n(0, pad));
    }

    /// Add a regular file at relative path `name` (no leading `/`).
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        let bytes = name.as_bytes();
        if bytes.len() > 99 || !name.is_ascii() {
            // pax extended header: "LEN path=NAME\n", LEN counting itself
            let body_len = " path=\n".len() + bytes.len();
            let mut len = body_len + 1;
            while len.to_string().len() + body_len != len {
                len = len.to_string().len() + body_len;
            }
            let mut rec = format!("{len} path=").into_bytes();
            rec.extend_from_slice(bytes);
            rec.push(b'\n');
            let h = header(b"././@PaxHeader", 0o644, rec.len() as u64, b'x');
            self.out.extend_from_slice(&h);
            self.data(&rec);
        }
        let h = header(bytes, mode, data.len() as u64, b'0');
        self.out.extend_from_slice(&h);
        self.data(data);
    }

    /// The archive, with its two zero end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0, 2 * BLOCK));
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_checksum() {
        let mut t = Tar::new();
        t.file("a/b.txt", 0o600, b"hello");
        let out = t.finish();
        assert_eq!(out.len(), 512 * 4);
        assert_eq!(&out[..7], b"a/b.txt");
        assert_eq!(&out[124..135], b"00000000005");
        assert_eq!(&out[512..517], b"hello");
        let mut h = out[..512].to_vec();
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(&out[148..154], format!("{sum:06o}").as_bytes());
    }

    #[test]
    fn pax_length_counts_itself() {
        let name = "x".repeat(150);
        let mut t = Tar::new();
        t.file(&name, 0o600, b"");
        let out = t.finish();
        assert_eq!(out[156], b'x');
        let rec = &out[512..];
        let end = rec.iter().position(|&b| b == b'\n').unwrap_or(0) + 1;
        let text = std::str::from_utf8(&rec[..end]).unwrap_or("");
        let len: usize = text.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
        assert_eq!(len, end);
        assert_eq!(text, format!("{len} path={name}\n"));
    }
}
