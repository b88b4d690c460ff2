//! Terminal styling: colour only on a terminal, and never when `NO_COLOR` is set.

use std::io::IsTerminal;

/// ANSI styles, or nothing when colour is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when `stream_is_tty` and `NO_COLOR` is unset or empty (https://no-color.org).
    pub fn detect(stream_is_tty: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: stream_is_tty && !no_color,
        }
    }

    /// For text written to standard output.
    pub fn stdout() -> Style {
        Style::detect(std::io::stdout().is_terminal())
    }

    /// For text written to standard error.
    pub fn stderr() -> Style {
        Style::detect(std::io::stderr().is_terminal())
    }

    pub fn plain() -> Style {
        Style { color: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn blue(&self, t: &str) -> String {
        self.paint("34", t)
    }
    pub fn magenta(&self, t: &str) -> String {
        self.paint("35", t)
    }
    pub fn cyan(&self, t: &str) -> String {
        self.paint("36", t)
    }
}

/// On the ground floor, so that the session's refusals word counts the same way.
pub use crate::console::plural;

/// Pads `text` to `width` visible characters (ANSI codes are not counted).
pub fn pad(styled: &str, visible_len: usize, width: usize) -> String {
    let mut s = styled.to_string();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(visible_len)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_style_adds_no_escape_codes() {
        assert_eq!(Style::plain().bold("x"), "x");
        assert_eq!(Style { color: true }.bold("x"), "\x1b[1mx\x1b[0m");
    }

    #[test]
    fn pad_ignores_escape_codes() {
        let s = Style { color: true }.red("ab");
        assert_eq!(pad(&s, 2, 4), format!("{s}  "));
    }
}
