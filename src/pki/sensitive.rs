//! [`Sensitive`]: a credential (Vault token, AppRole secret ID, JWT, AWS secret key) that can
//! be cloned and compared but never shown, beside [`super::PrivateKey`], which never prints
//! its material either.

use std::fmt;

/// A credential: cloneable and comparable, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into().trim().to_string())
    }

    /// Exactly as given, whitespace included: a keystore password is used byte for byte.
    pub fn verbatim(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    /// The value, for the one place it is sent (a header, a login body, an SDK call).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in characters (JKS has a minimum).
    pub fn len_chars(&self) -> usize {
        self.0.chars().count()
    }

    /// SHA-256 of the value, to notice a rotated credential without keeping it in clear.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print_and_are_told_apart_by_fingerprint() {
        let secret = Sensitive::new("s.supersecret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_ne!(secret.fingerprint(), Sensitive::new("other").fingerprint());
        assert_eq!(Sensitive::new(" s.x \n").expose(), "s.x");
    }
}
