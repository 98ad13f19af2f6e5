//! Values written as text the same way everywhere: bytes and digests as lowercase hex,
//! file modes as four octal digits.

use sha2::{Digest, Sha256};

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of `bytes`, in lowercase hex (what manifests and plans record).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A file mode: permission bits with setuid, setgid and sticky (at most 0o7777).
/// Written as four octal digits ("0644") in builds, manifests and plans, and read
/// from any octal spelling ("644", "00644"): the one place modes are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(u32);

impl Mode {
    /// `bits` if it is a mode (at most 0o7777).
    pub fn new(bits: u32) -> Option<Mode> {
        (bits <= 0o7777).then_some(Mode(bits))
    }

    /// An octal mode as written by a user, `stat -c %a` or a manifest.
    pub fn parse(text: &str) -> Option<Mode> {
        let t = text.trim();
        if t.is_empty() || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u32::from_str_radix(t, 8).ok().and_then(Mode::new)
    }

    /// A file holding a secret: root's alone.
    pub const SECRET: Mode = Mode(0o600);
    /// A file everyone reads (a file's default).
    pub const FILE: Mode = Mode(0o644);
    /// A script or a directory.
    pub const EXECUTABLE: Mode = Mode(0o755);

    /// Anyone may execute it (a script).
    pub fn executable(self) -> bool {
        self.0 & 0o111 != 0
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// Every bit either mode has (two declarations of one directory merge).
    pub fn union(self, other: Mode) -> Mode {
        Mode(self.0 | other.0)
    }
}

/// `mode == "0644"`: compares with the four-digit spelling.
impl PartialEq<&str> for Mode {
    fn eq(&self, other: &&str) -> bool {
        Mode::parse(other) == Some(*self)
    }
}

impl Default for Mode {
    fn default() -> Mode {
        Mode::FILE
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let text = String::deserialize(d)?;
        Mode::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an octal file mode: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_sha256() {
        assert_eq!(hex(&[0, 0x0f, 0xab]), "000fab");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn modes() {
        let m = |t: &str| Mode::parse(t).map(|m| m.to_string());
        assert_eq!(m("644").as_deref(), Some("0644"));
        assert_eq!(m("00644").as_deref(), Some("0644"));
        assert_eq!(m(" 4755 ").as_deref(), Some("4755"));
        assert_eq!(m("17777"), None);
        assert_eq!(m("rw-r--r--"), None);
        assert_eq!(m("0o644"), None);
        assert_eq!(m(""), None);
        let (a, b) = (Mode::parse("2755").unwrap(), Mode::parse("0775").unwrap());
        assert_eq!(a.union(b).to_string(), "2775");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"2755\"");
        assert_eq!(
            serde_json::from_str::<Mode>("\"755\"").unwrap().bits(),
            0o755
        );
        assert!(serde_json::from_str::<Mode>("\"9\"").is_err());
    }
}
