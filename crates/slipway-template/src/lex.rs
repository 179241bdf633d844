//! Splits template text into raw text and the tokens of each `{{ action }}`.

use crate::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Text(String),
    /// Start of an action; the tokens up to [`Tok::Close`] belong to it.
    Open,
    Close,
    /// `.A.B` (an empty vector is the dot itself).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone has the name "").
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Number(f64, bool),
    Pipe,
    LParen,
    RParen,
    /// `.A` following a `)`: a field of the parenthesised value.
    ChainField(Vec<String>),
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

pub fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1usize;
    let mut trim_next_text = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut out, rest, line, trim_next_text, false);
            break;
        };
        let trim_left = rest[open + 2..].starts_with("- ") || rest[open + 2..].starts_with("-\t") || rest[open + 2..].starts_with("-\n");
        push_text(&mut out, &rest[..open], line, trim_next_text, trim_left);
        line += rest[..open].matches('\n').count();
        let mut body_start = open + 2;
        if trim_left {
            body_start += 1;
        }
        let action_line = line;
        let after = &rest[body_start..];
        // Comments.
        let trimmed = after.trim_start();
        if trimmed.starts_with("/*") {
            let Some(end) = trimmed.find("*/") else {
                return Err(TemplateError::new(action_line, "unclosed comment"));
            };
            let tail = &trimmed[end + 2..];
            let tail_trim = tail.trim_start();
            let (trim_right, close_len) = if tail_trim.starts_with("-}}") {
                (true, 3)
            } else if tail_trim.starts_with("}}") {
                (false, 2)
            } else {
                return Err(TemplateError::new(action_line, "comment ends before closing delimiter"));
            };
            let consumed = (after.len() - tail_trim.len()) + close_len;
            line += after[..consumed].matches('\n').count();
            rest = &after[consumed..];
            trim_next_text = trim_right;
            continue;
        }
        out.push(Token {
            tok: Tok::Open,
            line: action_line,
        });
        let (consumed, trim_right) = lex_action(after, &mut line, &mut out)?;
        out.push(Token { tok: Tok::Close, line });
        rest = &after[consumed..];
        trim_next_text = trim_right;
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Token>, text: &str, line: usize, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start();
    }
    if trim_end {
        t = t.trim_end();
    }
    if !t.is_empty() {
        out.push(Token {
            tok: Tok::Text(t.to_string()),
            line,
        });
    }
}

/// Lexes one action body; returns the bytes consumed (including the closing
/// delimiter) and whether it ended with `-}}`.
fn lex_action(s: &str, line: &mut usize, out: &mut Vec<Token>) -> Result<(usize, bool), TemplateError> {
    let b = s.as_bytes();
    let mut i = 0;
    let start_line = *line;
    let push = |out: &mut Vec<Token>, tok: Tok, line: usize| out.push(Token { tok, line });
    loop {
        if i >= b.len() {
            return Err(TemplateError::new(start_line, "unclosed action"));
        }
        let c = b[i];
        if c == b'\n' {
            *line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            // Skip the whole run at once: looking ahead from every blank is quadratic.
            let ws = s[i..].len() - s[i..].trim_start().len();
            *line += s[i..i + ws].matches('\n').count();
            if s[i + ws..].starts_with("-}}") {
                return Ok((i + ws + 3, true));
            }
            i += ws;
            continue;
        }
        if s[i..].starts_with("}}") {
            return Ok((i + 2, false));
        }
        let (tok, n) = match c {
            b'|' => (Tok::Pipe, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b':' if b.get(i + 1) == Some(&b'=') => (Tok::Declare, 2),
            b'=' => (Tok::Assign, 1),
            b'"' => {
                let (value, n) = lex_quoted(&s[i..]).ok_or_else(|| TemplateError::new(*line, "unterminated quoted string"))?;
                (Tok::Str(value), n)
            }
            b'`' => lex_raw_quoted(&s[i..], line)?,
            b'.' => {
                let (fields, n) = lex_fields(&s[i..]);
                (Tok::Field(fields), n)
            }
            b'$' => lex_var(&s[i..]),
            b'-' | b'+' | b'0'..=b'9' => lex_number(&s[i..], *line)?,
            c if is_ident_char(c) => {
                let n = s[i..].bytes().take_while(|c| is_ident_char(*c)).count();
                (Tok::Ident(s[i..i + n].to_string()), n)
            }
            other => {
                return Err(TemplateError::new(*line, format!("unexpected {:?} in action", other as char)));
            }
        };
        push(out, tok, *line);
        i += n;
        // `.A` right after a `)` is a field of the parenthesised value.
        if c == b')' && b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|c| is_ident_char(*c)) {
            let (fields, n) = lex_fields(&s[i..]);
            push(out, Tok::ChainField(fields), *line);
            i += n;
        }
    }
}

/// Lexes a raw string starting at a backquote, which may span lines (counted into
/// `line`), and returns it with the bytes consumed.
fn lex_raw_quoted(s: &str, line: &mut usize) -> Result<(Tok, usize), TemplateError> {
    let end = s[1..]
        .find('`')
        .ok_or_else(|| TemplateError::new(*line, "unterminated raw quoted string"))?;
    let value = &s[1..1 + end];
    *line += value.matches('\n').count();
    Ok((Tok::Str(value.to_string()), end + 2))
}

/// Lexes `$name` with any `.A.B` fields after it, and returns the bytes consumed.
fn lex_var(s: &str) -> (Tok, usize) {
    let b = s.as_bytes();
    let name_len = s[1..].bytes().take_while(|c| is_ident_char(*c)).count();
    let name = s[1..1 + name_len].to_string();
    let mut i = 1 + name_len;
    let mut fields = Vec::new();
    if b.get(i) == Some(&b'.') {
        let (f, n) = lex_fields(&s[i..]);
        fields = f;
        i += n;
    }
    (Tok::Var(name, fields), i)
}

/// Lexes a number (signed, decimal, float or `0x` hex) and whether it is written as an
/// integer, and returns the bytes consumed.
fn lex_number(s: &str, line: usize) -> Result<(Tok, usize), TemplateError> {
    let n = s
        .bytes()
        .enumerate()
        .take_while(|(k, c)| c.is_ascii_alphanumeric() || *c == b'.' || ((*c == b'-' || *c == b'+') && *k == 0))
        .count();
    let text = &s[..n];
    let is_int = !text.contains('.') && !text.contains(['e', 'E']);
    let value = if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok().map(|v| v as f64)
    } else {
        text.parse::<f64>().ok()
    };
    let value = value.ok_or_else(|| TemplateError::new(line, format!("bad number syntax: {text:?}")))?;
    Ok((Tok::Number(value, is_int), n))
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Lexes `.A.B` (or a lone `.`) and returns the field names and bytes consumed.
fn lex_fields(s: &str) -> (Vec<String>, usize) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut fields = Vec::new();
    while b.get(i) == Some(&b'.') {
        let n = s[i + 1..].bytes().take_while(|c| is_ident_char(*c)).count();
        if n == 0 {
            i += 1;
            break;
        }
        fields.push(s[i + 1..i + 1 + n].to_string());
        i += 1 + n;
    }
    (fields, i)
}

/// Lexes a Go interpreted string literal starting at `"`.
fn lex_quoted(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    None
}
