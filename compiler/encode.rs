//! Values written as text the same way everywhere: file modes as four octal digits.

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
    fn modes() {
        assert_eq!(norm_mode("644"), "0644");
        assert_eq!(norm_mode("00644"), "0644");
        assert_eq!(norm_mode(" 4755 "), "4755");
        assert_eq!(norm_mode("17777"), "17777");
        assert_eq!(norm_mode("rw-r--r--"), "rw-r--r--");
    }
}
