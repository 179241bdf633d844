//! Go `text/template`, as ACR task files use it, with the sprig functions they call.
//!
//! Task files are rendered before they are parsed as YAML (`{{.Run.ID}}`,
//! `{{.Values.tag | default "latest"}}`, `{{range .Values.items}}…{{end}}`). This
//! crate interprets that language over a [`serde_json::Value`]: fields, variables,
//! pipelines, parentheses, `if`/`else if`/`range`/`with`/`end`, trim markers and
//! comments, Go's built-in functions and the common sprig ones. A missing key
//! renders as the empty string. An unknown function is a parse error naming it.
//!
//! No maintained Rust crate implements Go's template language with sprig and these
//! rules, so the subset lives here, in the pure core, with no I/O.
//!
//! ```
//! use serde_json::json;
//! let data = json!({"Run": {"ID": "cf1"}, "Values": {"name": "web"}});
//! let out = slipway_template::render("{{.Values.name | upper}}:{{.Run.ID}}{{.Values.nope}}", &data).unwrap();
//! assert_eq!(out, "WEB:cf1");
//! ```

mod eval;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;

/// Why a template could not be parsed or executed. `line` is 1-based in the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

impl TemplateError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        TemplateError {
            line,
            message: message.into(),
        }
    }
}

/// Bounds on what one template may cost. Task files come from untrusted authors in
/// `slipway serve`, so every way a template can spend memory, time or stack is capped,
/// and exceeding a cap is an ordinary [`TemplateError`] naming the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of `{{if}}`/`{{range}}`/`{{with}}` blocks and of parentheses.
    pub max_depth: usize,
    /// Largest rendered text, and largest string any one function may return, in bytes.
    pub max_output_bytes: usize,
    /// Bytes that function results and copied values may add up to over one execution.
    pub max_work_bytes: u64,
    /// Evaluation steps (actions, block entries, range iterations) over one execution.
    pub max_steps: u64,
    /// Wall-clock time one execution may take.
    pub max_duration: std::time::Duration,
}

impl Default for Limits {
    /// Generous for any real task file (acb's conformance files use a few hundred
    /// steps and kilobytes), small enough that a hostile one fails in well under a second.
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_output_bytes: 4 << 20,
            max_work_bytes: 64 << 20,
            max_steps: 1_000_000,
            max_duration: std::time::Duration::from_secs(10),
        }
    }
}

/// A parsed template, ready to execute against any data.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
    limits: Limits,
}

impl Template {
    /// Parses `text` with the default [`Limits`]. Unknown functions, unbalanced blocks
    /// and nesting deeper than the limit are errors here.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, Limits::default())
    }

    /// Parses `text`; `limits` also bound every later [`Template::execute`].
    pub fn parse_with(text: &str, limits: Limits) -> Result<Template, TemplateError> {
        let tokens = lex::lex(text)?;
        let nodes = parse::parse(tokens, limits.max_depth)?;
        Ok(Template { nodes, limits })
    }

    /// Executes the template with `data` as the dot.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        eval::execute(&self.nodes, data, &self.limits)
    }
}

/// Parses and executes `text` in one go, with the default [`Limits`].
pub fn render(text: &str, data: &Value) -> Result<String, TemplateError> {
    Template::parse(text)?.execute(data)
}

/// Parses and executes `text` in one go within `limits`.
pub fn render_with(text: &str, data: &Value, limits: &Limits) -> Result<String, TemplateError> {
    Template::parse_with(text, *limits)?.execute(data)
}

/// Whether `name` is a function templates may call.
pub fn is_function(name: &str) -> bool {
    funcs::exists(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str) -> String {
        let data = json!({
            "Run": {"ID": "cf1", "Registry": "reg.io", "Branch": ""},
            "Values": {"name": "web", "n": 3, "list": ["a", "b"], "flag": true,
                        "m": {"y": 2, "x": 1}, "csv": "a,b,c", "secret": "cGFzcw=="},
        });
        render(t, &data).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn err(t: &str) -> String {
        render(t, &json!({})).unwrap_err().to_string()
    }

    #[test]
    fn fields_and_missing_keys() {
        assert_eq!(r("{{.Run.ID}}-{{ .Values.name }}"), "cf1-web");
        assert_eq!(r("[{{.Values.missing}}][{{.Nope.Deeper}}]"), "[][]");
        assert_eq!(r("{{.Values.n}} {{.Values.flag}} {{.Values.list}}"), "3 true [a b]");
    }

    #[test]
    fn pipelines_and_sprig() {
        assert_eq!(r("{{.Values.name | upper | quote}}"), "\"WEB\"");
        assert_eq!(r("{{.Values.none | default \"latest\"}}"), "latest");
        assert_eq!(r("{{.Run.Branch | default \"main\"}}"), "main");
        assert_eq!(r("{{ \"YQ==\" | b64dec }}{{ \"a\" | b64enc }}"), "aYQ==");
        assert_eq!(r("{{ replace \"-\" \"_\" \"a-b-c\" }}"), "a_b_c");
        assert_eq!(r("{{ join \",\" .Values.list }}"), "a,b");
        assert_eq!(r("{{ (split \",\" .Values.csv)._1 }}"), "b");
        assert_eq!(r("{{ if contains \"e\" .Values.name }}yes{{ end }}"), "yes");
        assert_eq!(r("{{ if hasPrefix \"w\" .Values.name }}w{{ end }}"), "w");
        assert_eq!(r("{{ \"  x \" | trim | squote }}"), "'x'");
        assert_eq!(r("{{ .Values.m | toJson }}"), "{\"x\":1,\"y\":2}");
        assert_eq!(r("{{ lower \"ABC\" }} {{ printf \"%s-%d\" \"a\" 3 }}"), "abc a-3");
    }

    #[test]
    fn control_flow() {
        assert_eq!(r("{{if .Values.flag}}on{{else}}off{{end}}"), "on");
        assert_eq!(r("{{if .Values.none}}on{{else if .Values.n}}n{{end}}"), "n");
        assert_eq!(r("{{range .Values.list}}<{{.}}>{{end}}"), "<a><b>");
        assert_eq!(r("{{range $i, $e := .Values.list}}{{$i}}={{$e}};{{end}}"), "0=a;1=b;");
        assert_eq!(r("{{range $k, $v := .Values.m}}{{$k}}{{$v}}{{end}}"), "x1y2");
        assert_eq!(r("{{range .Values.none}}x{{else}}empty{{end}}"), "empty");
        assert_eq!(r("{{with .Values.name}}{{.}}!{{end}}"), "web!");
        assert_eq!(
            r("{{$x := .Values.name}}{{with .Run}}{{$x}}{{.ID}}{{$.Values.n}}{{end}}"),
            "webcf13"
        );
        assert_eq!(r("{{if and .Values.flag (eq .Values.n 3)}}ok{{end}}"), "ok");
        assert_eq!(r("{{if ne .Values.name \"web\"}}x{{else}}y{{end}}"), "y");
        assert_eq!(r("{{ len .Values.list }}{{ index .Values.list 1 }}"), "2b");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(r("a  {{- /* c */ -}}  b"), "ab");
        assert_eq!(r("a\n{{- .Run.ID }}\n"), "acf1\n");
    }

    /// Each hostile template fails fast, naming the limit, instead of eating the
    /// machine: memory (before allocating), stack (nesting), time (steps and clock).
    #[test]
    fn hostile_templates_hit_a_limit() {
        let deep_ifs = "{{if true}}".repeat(10_000) + &"{{end}}".repeat(10_000);
        let deep_parens = "{{".to_string() + &"(".repeat(10_000) + "1" + &")".repeat(10_000) + "}}";
        let cases: Vec<(String, &str)> = vec![
            ("{{ repeat 100000000000 \"x\" }}".into(), "larger than"),
            ("{{ repeat 300000000 \"x\" }}".into(), "larger than"),
            (deep_ifs, "nested more than 64 deep"),
            (deep_parens, "nested more than 64 deep"),
            (
                "{{$l := splitList \",\" (repeat 20000 \"a,\")}}{{range $l}}{{range $l}}{{range $l}}x{{end}}{{end}}{{end}}".into(),
                "evaluation steps",
            ),
            ("{{range 3000000}}{{end}}".into(), "evaluation steps"),
            ("{{range 100000000000}}{{end}}".into(), "evaluation steps"),
            (
                "{{ replace \"a\" (repeat 1000 \"b\") (repeat 1000000 \"a\") }}".into(),
                "larger than",
            ),
            ("{{ splitList \"\" (repeat 1000000 \"a\") }}".into(), "larger than"),
            (
                "{{$x := repeat 1000000 \"a\"}}{{$x = printf \"%s%s\" $x $x}}{{$x = printf \"%s%s\" $x $x}}{{$x = printf \"%s%s\" $x $x}}"
                    .into(),
                "larger than",
            ),
            ("{{range 100000}}{{ repeat 1000 \"a\" }}{{end}}".into(), "larger than 4 MiB"),
            (
                "{{$x := repeat 4000000 \"a\"}}{{range 100}}{{$y := $x}}{{end}}".into(),
                "MiB of values",
            ),
            // Found by the fuzzer: a dict of itself doubles each round.
            (
                "{{$x := dict \"a\" \"b\"}}{{range 64}}{{$x = dict \"l\" $x \"r\" $x}}{{end}}".into(),
                "MiB",
            ),
        ];
        for (text, want) in cases {
            let started = std::time::Instant::now();
            let e = render(&text, &json!({})).unwrap_err().to_string();
            assert!(e.contains(want), "{}…: {e}", &text[..text.len().min(60)]);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{}… took {:?}",
                &text[..40],
                started.elapsed()
            );
        }
        // A long literal compared a million times: each use costs its length.
        let big = "x".repeat(1 << 20);
        let slow = format!("{{{{range 1000000}}}}{{{{if eq \"{big}\" \"{big}\"}}}}{{{{end}}}}{{{{end}}}}");
        let started = std::time::Instant::now();
        let e = render(&slow, &json!({})).unwrap_err().to_string();
        assert!(e.contains("MiB of values"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(render("{{ mod -9223372036854775808 -1 }}", &json!({})).unwrap(), "0");
        let tight = Limits {
            max_duration: std::time::Duration::from_millis(1),
            max_steps: u64::MAX,
            ..Limits::default()
        };
        let e = render_with("{{range 100000000}}{{end}}", &json!({}), &tight)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ran longer than"), "{e}");
    }

    #[test]
    fn errors_name_the_problem_and_line() {
        assert_eq!(err("x\n{{ nosuch 1 }}"), "template line 2: function \"nosuch\" not defined");
        assert!(err("{{ if .A }}").contains("unexpected EOF"));
        assert!(err("{{ end }}").contains("unexpected {{end}}"));
        assert!(err("{{ .A ").contains("unclosed action"));
        assert!(err("{{ \"abc }}").contains("unterminated quoted string"));
        assert!(err("{{ b64dec \"***\" }}").contains("b64dec"));
    }
}
