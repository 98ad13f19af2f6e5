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

/// "644", "0644", "00644" -> "0644"; anything else unchanged.
pub fn norm_mode(m: &str) -> String {
    match u32::from_str_radix(m.trim(), 8) {
        Ok(v) if v <= 0o7777 => format!("{v:04o}"),
        _ => m.to_string(),
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
        assert_eq!(norm_mode("644"), "0644");
        assert_eq!(norm_mode("00644"), "0644");
        assert_eq!(norm_mode(" 4755 "), "4755");
        assert_eq!(norm_mode("17777"), "17777");
        assert_eq!(norm_mode("rw-r--r--"), "rw-r--r--");
    }
}
