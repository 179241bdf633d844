//! Builds the template tree from tokens.

use crate::funcs;
use crate::lex::{Tok, Token};
use crate::TemplateError;

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If(Branch),
    Range(Branch),
    With(Branch),
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipeline,
    pub body: Vec<Node>,
    pub otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub line: usize,
    /// Variables declared (`$x :=`) or assigned (`$x =`) by this pipeline.
    pub vars: Vec<String>,
    pub declare: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Nil,
    Sub(Box<Pipeline>, Vec<String>),
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Blocks and parentheses open around the current token.
    depth: usize,
    max_depth: usize,
}

enum ListEnd {
    Eof,
    End,
    Else(Option<(String, Pipeline)>),
}

pub fn parse(toks: Vec<Token>, max_depth: usize) -> Result<Vec<Node>, TemplateError> {
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        max_depth,
    };
    let (nodes, end) = p.list()?;
    match end {
        ListEnd::Eof => Ok(nodes),
        ListEnd::End => Err(TemplateError::new(p.line(), "unexpected {{end}}")),
        ListEnd::Else(_) => Err(TemplateError::new(p.line(), "unexpected {{else}}")),
    }
}

impl Parser {
    /// Enters a block or parenthesis; the parser and the evaluator recurse once per level,
    /// so the depth is capped before it can exhaust a thread's stack.
    fn enter(&mut self, line: usize) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(TemplateError::new(
                line,
                format!("blocks and parentheses are nested more than {} deep (the limit)", self.max_depth),
            ));
        }
        Ok(())
    }

    fn line(&self) -> usize {
        self.toks
            .get(self.pos.saturating_sub(1))
            .or_else(|| self.toks.last())
            .map(|t| t.line)
            .unwrap_or(1)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_close(&mut self) -> Result<(), TemplateError> {
        match self.next() {
            Some(Token { tok: Tok::Close, .. }) => Ok(()),
            Some(t) => Err(TemplateError::new(t.line, format!("unexpected {:?} in action", t.tok))),
            None => Err(TemplateError::new(self.line(), "unclosed action")),
        }
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else}}`.
    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(tok) = self.next() {
            match tok.tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Open => {
                    let keyword = match self.peek() {
                        Some(Tok::Ident(k))
                            if matches!(
                                k.as_str(),
                                "if" | "range" | "with" | "end" | "else" | "define" | "template" | "block"
                            ) =>
                        {
                            Some(k.clone())
                        }
                        _ => None,
                    };
                    match keyword.as_deref() {
                        None => {
                            let pipe = self.pipeline(tok.line, true)?;
                            self.expect_close()?;
                            nodes.push(Node::Action(pipe));
                        }
                        Some("end") => {
                            self.pos += 1;
                            self.expect_close()?;
                            return Ok((nodes, ListEnd::End));
                        }
                        Some("else") => {
                            self.pos += 1;
                            if let Some(Tok::Ident(k)) = self.peek() {
                                if k == "if" || k == "with" {
                                    let k = k.clone();
                                    self.pos += 1;
                                    let pipe = self.pipeline(tok.line, true)?;
                                    self.expect_close()?;
                                    return Ok((nodes, ListEnd::Else(Some((k, pipe)))));
                                }
                            }
                            self.expect_close()?;
                            return Ok((nodes, ListEnd::Else(None)));
                        }
                        Some(k @ ("if" | "range" | "with")) => {
                            let k = k.to_string();
                            self.pos += 1;
                            nodes.push(self.branch(&k, tok.line)?);
                        }
                        Some(other) => {
                            return Err(TemplateError::new(
                                tok.line,
                                format!("{{{{{other}}}}} is not supported in task files"),
                            ));
                        }
                    }
                }
                other => return Err(TemplateError::new(tok.line, format!("unexpected {other:?}"))),
            }
        }
        Ok((nodes, ListEnd::Eof))
    }

    fn branch(&mut self, keyword: &str, line: usize) -> Result<Node, TemplateError> {
        self.enter(line)?;
        let node = self.branch_body(keyword, line);
        self.depth -= 1;
        node
    }

    fn branch_body(&mut self, keyword: &str, line: usize) -> Result<Node, TemplateError> {
        let pipe = self.pipeline(line, true)?;
        self.expect_close()?;
        let (body, end) = self.list()?;
        let otherwise = match end {
            ListEnd::Eof => {
                return Err(TemplateError::new(
                    self.line(),
                    format!("unexpected EOF: {{{{{keyword}}}}} at line {line} has no {{{{end}}}}"),
                ))
            }
            ListEnd::End => Vec::new(),
            ListEnd::Else(None) => {
                let (otherwise, end) = self.list()?;
                match end {
                    ListEnd::End => otherwise,
                    ListEnd::Eof => {
                        return Err(TemplateError::new(
                            self.line(),
                            format!("unexpected EOF: {{{{{keyword}}}}} at line {line} has no {{{{end}}}}"),
                        ))
                    }
                    ListEnd::Else(_) => return Err(TemplateError::new(self.line(), "unexpected {{else}} after {{else}}")),
                }
            }
            ListEnd::Else(Some((chained, chained_pipe))) => {
                // `{{else if x}}` is `{{else}}{{if x}}…{{end}}` sharing the outer `{{end}}`.
                let inner = self.chained_branch(&chained, chained_pipe, line)?;
                vec![inner]
            }
        };
        let b = Branch { pipe, body, otherwise };
        Ok(match keyword {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    fn chained_branch(&mut self, keyword: &str, pipe: Pipeline, line: usize) -> Result<Node, TemplateError> {
        self.enter(line)?;
        let node = self.chained_branch_body(keyword, pipe, line);
        self.depth -= 1;
        node
    }

    fn chained_branch_body(&mut self, keyword: &str, pipe: Pipeline, line: usize) -> Result<Node, TemplateError> {
        let (body, end) = self.list()?;
        let otherwise = match end {
            ListEnd::Eof => {
                return Err(TemplateError::new(
                    self.line(),
                    format!("unexpected EOF: {{{{{keyword}}}}} at line {line} has no {{{{end}}}}"),
                ))
            }
            ListEnd::End => Vec::new(),
            ListEnd::Else(None) => {
                let (otherwise, end) = self.list()?;
                if !matches!(end, ListEnd::End) {
                    return Err(TemplateError::new(
                        self.line(),
                        format!("unexpected EOF: {{{{{keyword}}}}} has no {{{{end}}}}"),
                    ));
                }
                otherwise
            }
            ListEnd::Else(Some((k, p))) => vec![self.chained_branch(&k, p, line)?],
        };
        let b = Branch { pipe, body, otherwise };
        Ok(if keyword == "if" { Node::If(b) } else { Node::With(b) })
    }

    /// Parses `[$x :=] cmd | cmd …` up to `}}` or `)` (not consumed).
    fn pipeline(&mut self, line: usize, allow_decl: bool) -> Result<Pipeline, TemplateError> {
        let (vars, declare) = if allow_decl { self.declared_vars() } else { (Vec::new(), false) };
        let mut cmds = Vec::new();
        loop {
            let mut args = Vec::new();
            loop {
                match self.peek() {
                    None | Some(Tok::Close) | Some(Tok::RParen) | Some(Tok::Pipe) => break,
                    _ => {}
                }
                args.push(self.arg()?);
            }
            if args.is_empty() {
                return Err(TemplateError::new(line, "missing value for command"));
            }
            cmds.push(Command { args });
            if self.peek() == Some(&Tok::Pipe) {
                self.pos += 1;
                continue;
            }
            break;
        }
        Ok(Pipeline { line, vars, declare, cmds })
    }

    /// The variables a pipeline opens with, `$x, $y :=` (declared: true) or `$x =`
    /// (assigned); none, with nothing consumed, when it does not open so.
    fn declared_vars(&mut self) -> (Vec<String>, bool) {
        let mut vars = Vec::new();
        let mut declare = false;
        let save = self.pos;
        let mut names = Vec::new();
        while let Some(Tok::Var(name, fields)) = self.peek().cloned() {
            if !fields.is_empty() {
                break;
            }
            self.pos += 1;
            names.push(name);
            match self.peek() {
                Some(Tok::Comma) => {
                    self.pos += 1;
                    continue;
                }
                Some(Tok::Declare) => {
                    self.pos += 1;
                    declare = true;
                    vars = names.clone();
                }
                Some(Tok::Assign) => {
                    self.pos += 1;
                    vars = names.clone();
                }
                _ => {}
            }
            break;
        }
        if vars.is_empty() {
            self.pos = save;
        }
        (vars, declare)
    }

    /// The next token as an argument of a command (the caller peeked that one is there);
    /// a function must be one the templates know.
    fn arg(&mut self) -> Result<Arg, TemplateError> {
        let t = self.next().expect("peeked");
        Ok(match t.tok {
            Tok::Field(f) => Arg::Field(f),
            Tok::Var(n, f) => Arg::Var(n, f),
            Tok::Str(s) => Arg::Str(s),
            Tok::Number(v, int) => Arg::Num(v, int),
            Tok::Ident(id) => match id.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                name => {
                    if !funcs::exists(name) {
                        return Err(TemplateError::new(t.line, format!("function {name:?} not defined")));
                    }
                    Arg::Func(name.to_string())
                }
            },
            Tok::LParen => self.parenthesised(t.line)?,
            other => return Err(TemplateError::new(t.line, format!("unexpected {other:?} in command"))),
        })
    }

    /// `( pipeline )` after its `(`, one level deeper, with the `.A.B` fields that follow
    /// the `)`.
    fn parenthesised(&mut self, line: usize) -> Result<Arg, TemplateError> {
        self.enter(line)?;
        let inner = self.pipeline(line, false)?;
        self.depth -= 1;
        match self.next() {
            Some(Token { tok: Tok::RParen, .. }) => {}
            _ => return Err(TemplateError::new(line, "unclosed left paren")),
        }
        let chain = match self.peek() {
            Some(Tok::ChainField(f)) => {
                let f = f.clone();
                self.pos += 1;
                f
            }
            _ => Vec::new(),
        };
        Ok(Arg::Sub(Box::new(inner), chain))
    }
}
