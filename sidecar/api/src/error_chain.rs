//! An error and its causes as one line, for the messages both binaries print.

/// `error` and its sources, `outer: inner: innermost`, leaving out a cause whose text an
/// outer one already contains (many errors repeat their source in their own message).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error saying `text`, caused by `source` if any.
    #[derive(Debug)]
    struct Failure {
        text: &'static str,
        source: Option<Box<Failure>>,
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source.as_deref().map(|s| s as _)
        }
    }

    fn caused(text: &'static str, cause: &'static str) -> Failure {
        Failure {
            text,
            source: Some(Box::new(Failure {
                text: cause,
                source: None,
            })),
        }
    }

    #[test]
    fn causes_are_joined_and_a_repeated_one_left_out() {
        let plain = caused("upload failed", "connection refused");
        assert_eq!(error_chain(&plain), "upload failed: connection refused");
        let repeating = caused("upload failed: connection refused", "connection refused");
        assert_eq!(error_chain(&repeating), "upload failed: connection refused");
    }
}
