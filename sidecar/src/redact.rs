//! Redaction of secret-looking values in command lines before they are written anywhere.
//!
//! Rules (documented in the README): a value is replaced by [`REDACTED`] when it follows
//! a flag whose name looks secret (`--db-password=x`, `--token x`), when it is the value of
//! an environment-style assignment with a secret-looking key (`API_KEY=x`), or when it is the
//! password part of a URL (`postgres://app:x@db`).

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Words that make a flag or key name look like it carries a secret.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "cookie",
    "session",
    "signature",
    "private",
    "key",
];

/// Whether a flag or variable name (`--db-password`, `AWS_SECRET_ACCESS_KEY`) looks secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.trim_start_matches('-').to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .any(|word| {
            SECRET_WORDS
                .iter()
                .any(|secret| word == *secret || (secret.len() > 3 && word.ends_with(secret)))
        })
}

/// Returns the command line with secret-looking values replaced by [`REDACTED`].
pub fn redact_command_line(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut redact_next = false;
    for arg in argv {
        if redact_next {
            out.push(REDACTED.to_string());
            redact_next = false;
            continue;
        }
        if let Some((name, _)) = arg.split_once('=')
            && is_secret_name(name)
        {
            out.push(format!("{name}={REDACTED}"));
            continue;
        }
        if arg.starts_with('-') && !arg.contains('=') && is_secret_name(arg) {
            redact_next = true;
        }
        out.push(redact_url_password(arg));
    }
    out
}

/// Replaces the password of every `scheme://user:password@host` URL inside `arg`.
fn redact_url_password(arg: &str) -> String {
    let Some(scheme_end) = arg.find("://") else {
        return arg.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &arg[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return arg.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return arg.to_string();
    };
    format!(
        "{}{}:{REDACTED}{}",
        &arg[..authority_start],
        &authority[..colon],
        &arg[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(args: &[&str]) -> Vec<String> {
        redact_command_line(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_with_secret_names_lose_their_values() {
        assert_eq!(
            redact(&[
                "/app",
                "--db-password=hunter2",
                "--token",
                "abc",
                "--port",
                "8080"
            ]),
            [
                "/app",
                "--db-password=<redacted>",
                "--token",
                "<redacted>",
                "--port",
                "8080"
            ]
        );
    }

    #[test]
    fn environment_style_assignments_are_redacted_by_key() {
        assert_eq!(
            redact(&[
                "env",
                "AWS_SECRET_ACCESS_KEY=xyz",
                "GITHUB_TOKEN=t",
                "LOG_LEVEL=debug",
                "app"
            ]),
            [
                "env",
                "AWS_SECRET_ACCESS_KEY=<redacted>",
                "GITHUB_TOKEN=<redacted>",
                "LOG_LEVEL=debug",
                "app"
            ]
        );
    }

    #[test]
    fn url_passwords_are_redacted_but_the_rest_of_the_url_is_kept() {
        assert_eq!(
            redact(&[
                "--dsn",
                "postgres://app:s3cr3t@db:5432/shop?sslmode=require"
            ]),
            [
                "--dsn",
                "postgres://app:<redacted>@db:5432/shop?sslmode=require"
            ]
        );
        assert_eq!(
            redact(&["http://example.com/a@b"]),
            ["http://example.com/a@b"]
        );
    }

    #[test]
    fn harmless_names_are_kept() {
        for name in ["--keepalive", "--monkey-mode", "--listen", "--author"] {
            assert!(!is_secret_name(name), "{name} should not look secret");
        }
        for name in [
            "--api-key",
            "--apikey",
            "DB_PASSWORD",
            "--client-secret",
            "--session-cookie",
        ] {
            assert!(is_secret_name(name), "{name} should look secret");
        }
    }
}
