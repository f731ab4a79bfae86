//! Key patterns for subscriptions and scans: a prefix, or a glob.

use std::fmt;

/// Which keys a subscription or scan wants.
///
/// A glob has `*` (any run of characters, including none and including
/// `.`) and `?` (exactly one character); everything else matches itself.
/// `service.*` matches `service.http` and `service.http.port`; `*` matches
/// every key. Matching is linear in the key's length times the number of
/// `*`s, never exponential.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPattern {
    /// Every key.
    Any,
    /// Keys starting with this string.
    Prefix(String),
    /// Keys matching this glob.
    Glob(String),
}

impl KeyPattern {
    /// A glob pattern; one without `*` or `?` matches only that exact key,
    /// and `*` alone is [`KeyPattern::Any`].
    pub fn glob(pattern: &str) -> KeyPattern {
        if pattern == "*" {
            KeyPattern::Any
        } else {
            KeyPattern::Glob(pattern.to_owned())
        }
    }

    /// Keys starting with `prefix`.
    pub fn prefix(prefix: &str) -> KeyPattern {
        KeyPattern::Prefix(prefix.to_owned())
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeyPattern::Any => true,
            KeyPattern::Prefix(p) => key.starts_with(p.as_str()),
            KeyPattern::Glob(g) => glob_match(g.as_bytes(), key.as_bytes()),
        }
    }

    /// The literal prefix every matching key starts with (lets a scan skip
    /// keys early).
    pub fn literal_prefix(&self) -> &str {
        match self {
            KeyPattern::Any => "",
            KeyPattern::Prefix(p) => p,
            KeyPattern::Glob(g) => &g[..g.find(['*', '?']).unwrap_or(g.len())],
        }
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPattern::Any => f.write_str("*"),
            KeyPattern::Prefix(p) => write!(f, "{p}*"),
            KeyPattern::Glob(g) => f.write_str(g),
        }
    }
}

/// Glob matching with one backtrack point (the last `*`), the classic
/// linear-time algorithm. `?` matches one byte of a multi-byte character's
/// encoding only in keys it cannot split meaningfully; keys are compared as
/// bytes, which is exact for the ASCII patterns subscriptions use.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        let cases = [
            ("service.*", "service.http", true),
            ("service.*", "service.", true),
            ("service.*", "service", false),
            ("service.*", "services.http", false),
            ("*.port", "service.http.port", true),
            ("*.port", "service.http.ports", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**", "", true),
            ("*", "anything", true),
        ];
        for (pattern, key, want) in cases {
            assert_eq!(
                KeyPattern::glob(pattern).matches(key),
                want,
                "{pattern} vs {key}"
            );
        }
    }

    #[test]
    fn prefixes_and_literal_prefixes() {
        assert!(KeyPattern::prefix("svc/").matches("svc/a"));
        assert!(!KeyPattern::prefix("svc/").matches("sv"));
        assert_eq!(KeyPattern::glob("svc.*.port").literal_prefix(), "svc.");
        assert_eq!(KeyPattern::glob("*").literal_prefix(), "");
        assert_eq!(KeyPattern::glob("a?").literal_prefix(), "a");
    }

    #[test]
    fn pathological_globs_stay_fast() {
        // Exponential backtracking would take ages here.
        let key = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!KeyPattern::glob(&pattern).matches(&key));
    }
}
