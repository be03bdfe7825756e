//! The `filterQuery` language shared by the registry and catalog APIs.
//!
//! Grammar (keywords case-insensitive), a strict superset of Kubeflow's:
//! ```text
//! expr       := term ( OR term )*
//! term       := factor ( AND factor )*
//! factor     := NOT factor | "(" expr ")" | predicate
//! predicate  := property op value
//!             | property [NOT] IN "(" value ( "," value )* ")"
//!             | property [NOT] (LIKE | ILIKE) value
//!             | property IS [NOT] NULL
//! op         := = | != | <> | > | < | >= | <=
//! property   := ident ( "." ident )* | "`" chars "`" ( "." suffix )?
//! suffix     := string_value | int_value | double_value | bool_value
//! value      := 'str' | "str" | integer | float | true | false
//! ```
//! Kubeflow has no `NOT`, `IS NULL`, `NOT IN` or `NOT LIKE`; every query Kubeflow accepts parses here to the
//! same tree. Parsing knows nothing about columns: each consumer maps [`Property`] names to its own fields.

use std::fmt;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare { property: Property, op: CompareOp, value: Literal },
    In { property: Property, values: Vec<Literal>, negated: bool },
    IsNull { property: Property, negated: bool },
}

/// A property reference such as `name`, `accuracy.double_value` or `` `mlflow.source.type` ``.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The dotted path without the type suffix (`artifacts.ttft_p90` is `["artifacts", "ttft_p90"]`).
    pub path: Vec<String>,
    /// The explicit value type, if the property ended in `.string_value` and the like.
    pub suffix: Option<ValueType>,
}

impl Property {
    /// Returns the path joined with dots.
    pub fn name(&self) -> String {
        self.path.join(".")
    }
}

/// The value type named by a property suffix, or inferred from a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Int,
    Double,
    Bool,
}

impl ValueType {
    /// The property suffix that names this type.
    pub fn suffix(self) -> &'static str {
        match self {
            ValueType::String => "string_value",
            ValueType::Int => "int_value",
            ValueType::Double => "double_value",
            ValueType::Bool => "bool_value",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int | ValueType::Double => "number",
            ValueType::Bool => "boolean",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "string_value" => Some(ValueType::String),
            "int_value" => Some(ValueType::Int),
            "double_value" => Some(ValueType::Double),
            "bool_value" => Some(ValueType::Bool),
            _ => None,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Like,
    ILike,
    NotLike,
    NotILike,
}

impl CompareOp {
    /// Returns the SQL spelling of an ordering or equality operator.
    pub fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Gt => ">",
            CompareOp::Lt => "<",
            CompareOp::Ge => ">=",
            CompareOp::Le => "<=",
            CompareOp::Like | CompareOp::ILike => "LIKE",
            CompareOp::NotLike | CompareOp::NotILike => "NOT LIKE",
        }
    }

    /// Whether the operator is a (possibly negated) pattern match.
    pub fn is_pattern(self) -> bool {
        matches!(self, CompareOp::Like | CompareOp::ILike | CompareOp::NotLike | CompareOp::NotILike)
    }

    /// Whether the pattern match ignores case.
    pub fn is_case_insensitive(self) -> bool {
        matches!(self, CompareOp::ILike | CompareOp::NotILike)
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Literal {
    /// Returns the value type a property takes when compared with this literal and has no suffix.
    pub fn inferred_type(&self) -> ValueType {
        match self {
            Literal::String(_) => ValueType::String,
            Literal::Int(_) => ValueType::Int,
            Literal::Double(_) => ValueType::Double,
            Literal::Bool(_) => ValueType::Bool,
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(text) => formatter.write_str(text),
            Literal::Int(number) => write!(formatter, "{number}"),
            Literal::Double(number) => write!(formatter, "{number}"),
            Literal::Bool(flag) => write!(formatter, "{flag}"),
        }
    }
}

/// A filter that does not parse; `position` is the 0-based character offset of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter query at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

/// Parses a filter query; an empty or blank query is `None` (no filter).
pub fn parse(input: &str) -> Result<Option<Expr>, FilterError> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser { tokens, next: 0, end: input.chars().count() };
    let expr = parser.expr()?;
    if let Some(token) = parser.peek() {
        return Err(parser.error_at(token.position, format!("unexpected {}", token.kind)));
    }
    Ok(Some(expr))
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Word(String),
    Quoted(String),
    String(String),
    Int(i64),
    Double(f64),
    Symbol(&'static str),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Word(word) => write!(formatter, "'{word}'"),
            TokenKind::Quoted(name) => write!(formatter, "`{name}`"),
            TokenKind::String(text) => write!(formatter, "string \"{text}\""),
            TokenKind::Int(number) => write!(formatter, "number {number}"),
            TokenKind::Double(number) => write!(formatter, "number {number}"),
            TokenKind::Symbol(symbol) => write!(formatter, "'{symbol}'"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

const SYMBOLS: [&str; 11] = ["<>", "!=", ">=", "<=", "=", ">", "<", "(", ")", ",", "."];

fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let current = chars[index];
        let start = index;
        if current.is_whitespace() {
            index += 1;
            continue;
        }
        let kind = if current.is_ascii_alphabetic() || current == '_' {
            while index < chars.len() && (chars[index].is_ascii_alphanumeric() || chars[index] == '_') {
                index += 1;
            }
            TokenKind::Word(chars[start..index].iter().collect())
        } else if current == '"' || current == '\'' || current == '`' {
            let (text, after) = lex_quoted(&chars, start)?;
            index = after;
            if current == '`' { TokenKind::Quoted(text) } else { TokenKind::String(text) }
        } else if current.is_ascii_digit()
            || (current == '-' && chars.get(index + 1).is_some_and(|next| next.is_ascii_digit()))
        {
            index = lex_number_end(&chars, start);
            let text: String = chars[start..index].iter().collect();
            match text.parse::<i64>() {
                Ok(number) => TokenKind::Int(number),
                Err(_) => match text.parse::<f64>() {
                    Ok(number) => TokenKind::Double(number),
                    Err(_) => {
                        return Err(FilterError { position: start, message: format!("invalid number '{text}'") });
                    }
                },
            }
        } else if let Some(symbol) = SYMBOLS.iter().find(|symbol| {
            let symbol_chars: Vec<char> = symbol.chars().collect();
            chars[index..].starts_with(&symbol_chars)
        }) {
            index += symbol.len();
            TokenKind::Symbol(symbol)
        } else {
            return Err(FilterError { position: start, message: format!("unexpected character '{current}'") });
        };
        tokens.push(Token { kind, position: start });
    }
    Ok(tokens)
}

/// Reads a quoted run starting at `start`; a backslash escapes the next character.
fn lex_quoted(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let quote = chars[start];
    let mut text = String::new();
    let mut index = start + 1;
    while index < chars.len() {
        match chars[index] {
            '\\' if index + 1 < chars.len() => {
                text.push(chars[index + 1]);
                index += 2;
            }
            current if current == quote => return Ok((text, index + 1)),
            current => {
                text.push(current);
                index += 1;
            }
        }
    }
    Err(FilterError { position: start, message: format!("unterminated {quote}-quoted text") })
}

fn lex_number_end(chars: &[char], start: usize) -> usize {
    let mut index = start + 1;
    let mut previous = chars[start];
    while index < chars.len() {
        let current = chars[index];
        let continues = current.is_ascii_digit()
            || current == '.'
            || current == 'e'
            || current == 'E'
            || ((current == '-' || current == '+') && (previous == 'e' || previous == 'E'));
        if !continues {
            break;
        }
        previous = current;
        index += 1;
    }
    index
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |token| token.position)
    }

    fn error_at(&self, position: usize, message: String) -> FilterError {
        FilterError { position, message }
    }

    fn error_here(&self, expected: &str) -> FilterError {
        let found = self.peek().map_or_else(|| "end of query".to_owned(), |token| token.kind.to_string());
        self.error_at(self.position(), format!("expected {expected}, found {found}"))
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(word), .. }) if word.eq_ignore_ascii_case(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek_keyword(keyword);
        if found {
            self.next += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token { kind: TokenKind::Symbol(found), .. }) if *found == symbol);
        if found {
            self.next += 1;
        }
        found
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), FilterError> {
        if self.eat_symbol(symbol) { Ok(()) } else { Err(self.error_here(&format!("'{symbol}'"))) }
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.term()?];
        while self.eat_keyword("OR") {
            terms.push(self.term()?);
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Expr::Or(terms) })
    }

    fn term(&mut self) -> Result<Expr, FilterError> {
        let mut factors = vec![self.factor()?];
        while self.eat_keyword("AND") {
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 { factors.remove(0) } else { Expr::And(factors) })
    }

    fn factor(&mut self) -> Result<Expr, FilterError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if self.eat_symbol("(") {
            let inner = self.expr()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let property = self.property()?;
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(self.error_here("NULL"));
            }
            return Ok(Expr::IsNull { property, negated });
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("IN") {
            self.expect_symbol("(")?;
            let mut values = vec![self.typed_literal(&property)?];
            while self.eat_symbol(",") {
                values.push(self.typed_literal(&property)?);
            }
            self.expect_symbol(")")?;
            return Ok(Expr::In { property, values, negated });
        }
        let op = if self.eat_keyword("LIKE") {
            if negated { CompareOp::NotLike } else { CompareOp::Like }
        } else if self.eat_keyword("ILIKE") {
            if negated { CompareOp::NotILike } else { CompareOp::ILike }
        } else if negated {
            return Err(self.error_here("IN, LIKE or ILIKE after NOT"));
        } else {
            self.comparison_operator()?
        };
        let value = self.typed_literal(&property)?;
        Ok(Expr::Compare { property, op, value })
    }

    /// A literal that must fit the property's explicit type: `size.string_value = 5` would never match,
    /// so it is an error rather than a silent empty answer. Integers and doubles compare with each other.
    fn typed_literal(&mut self, property: &Property) -> Result<Literal, FilterError> {
        let position = self.position();
        let literal = self.literal()?;
        let Some(expected) = property.suffix else { return Ok(literal) };
        let numeric = |typ| matches!(typ, ValueType::Int | ValueType::Double);
        let found = literal.inferred_type();
        if expected == found || (numeric(expected) && numeric(found)) {
            return Ok(literal);
        }
        let shown = match &literal {
            Literal::String(text) => format!("the string '{text}'"),
            other => format!("{} {other}", found.noun()),
        };
        Err(self.error_at(
            position,
            format!("type mismatch: {}.{} compared with {shown}", property.name(), expected.suffix()),
        ))
    }

    fn comparison_operator(&mut self) -> Result<CompareOp, FilterError> {
        let op = match self.peek() {
            Some(Token { kind: TokenKind::Symbol(symbol), .. }) => match *symbol {
                "=" => CompareOp::Eq,
                "!=" | "<>" => CompareOp::Ne,
                ">" => CompareOp::Gt,
                "<" => CompareOp::Lt,
                ">=" => CompareOp::Ge,
                "<=" => CompareOp::Le,
                _ => return Err(self.error_here("a comparison operator")),
            },
            _ => return Err(self.error_here("a comparison operator")),
        };
        self.next += 1;
        Ok(op)
    }

    fn property(&mut self) -> Result<Property, FilterError> {
        let mut path = Vec::new();
        match self.advance() {
            Some(Token { kind: TokenKind::Quoted(name), .. }) => path.push(name),
            Some(Token { kind: TokenKind::Word(word), .. }) => path.push(word),
            _ => {
                self.next -= 1;
                return Err(self.error_here("a property name"));
            }
        }
        let mut suffix = None;
        while self.eat_symbol(".") {
            match self.advance() {
                Some(Token { kind: TokenKind::Word(word), position }) => {
                    if let Some(value_type) = ValueType::from_suffix(&word) {
                        suffix = Some(value_type);
                        if matches!(self.peek(), Some(Token { kind: TokenKind::Symbol("."), .. })) {
                            return Err(self.error_at(position, format!("'{word}' must end the property")));
                        }
                    } else {
                        path.push(word);
                    }
                }
                Some(Token { kind: TokenKind::Quoted(name), .. }) => path.push(name),
                _ => {
                    self.next -= 1;
                    return Err(self.error_here("a property name after '.'"));
                }
            }
        }
        Ok(Property { path, suffix })
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        let literal = match self.peek().map(|token| &token.kind) {
            Some(TokenKind::String(text)) => Literal::String(text.clone()),
            Some(TokenKind::Int(number)) => Literal::Int(*number),
            Some(TokenKind::Double(number)) => Literal::Double(*number),
            Some(TokenKind::Word(word)) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(TokenKind::Word(word)) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => return Err(self.error_here("a value")),
        };
        self.next += 1;
        Ok(literal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(name: &str) -> Property {
        Property { path: vec![name.to_owned()], suffix: None }
    }

    fn parsed(input: &str) -> Expr {
        parse(input).expect("parses").expect("not empty")
    }

    #[test]
    fn precedence_puts_and_below_or() {
        let expr = parsed(r#"(name = "model-a" OR name = "model-b") AND state = "LIVE""#);
        let Expr::And(parts) = expr else { panic!("expected AND") };
        assert!(matches!(parts[0], Expr::Or(ref terms) if terms.len() == 2));
        assert_eq!(
            parts[1],
            Expr::Compare { property: property("state"), op: CompareOp::Eq, value: Literal::String("LIVE".into()) }
        );
    }

    #[test]
    fn suffixes_backticks_and_numbers() {
        let expr = parsed("framework.string_value = 'pytorch'");
        assert!(
            matches!(expr, Expr::Compare { property: Property { ref path, suffix: Some(ValueType::String) }, .. } if path == &["framework"])
        );
        let expr = parsed("`mlflow.source.type` = \"notebook\"");
        assert!(
            matches!(expr, Expr::Compare { property: Property { ref path, suffix: None }, .. } if path == &["mlflow.source.type"])
        );
        assert!(matches!(parsed("accuracy > 0.95"), Expr::Compare { value: Literal::Double(_), .. }));
        assert!(matches!(parsed("x >= 1e-5"), Expr::Compare { value: Literal::Double(_), .. }));
        assert!(matches!(parsed("x < -3"), Expr::Compare { value: Literal::Int(-3), .. }));
        let expr = parsed("artifacts.ttft_p90.double_value < 100");
        assert!(
            matches!(expr, Expr::Compare { property: Property { ref path, suffix: Some(ValueType::Double) }, .. } if path.len() == 2)
        );
    }

    #[test]
    fn extensions() {
        assert!(matches!(parsed("NOT name = 'a'"), Expr::Not(_)));
        assert!(matches!(parsed("owner IS NULL"), Expr::IsNull { negated: false, .. }));
        assert!(matches!(parsed("owner is not null"), Expr::IsNull { negated: true, .. }));
        assert!(
            matches!(parsed("name NOT IN ('a', 'b')"), Expr::In { negated: true, ref values, .. } if values.len() == 2)
        );
        assert!(matches!(parsed("name not like 'a%'"), Expr::Compare { op: CompareOp::NotLike, .. }));
        assert!(matches!(parsed("name ILIKE '%A%'"), Expr::Compare { op: CompareOp::ILike, .. }));
    }

    #[test]
    fn empty_is_no_filter() {
        assert_eq!(parse("   "), Ok(None));
    }

    #[test]
    fn errors_name_the_position() {
        let error = parse("name = ").unwrap_err();
        assert_eq!(error.position, 7);
        assert!(error.to_string().contains("expected a value"), "{error}");
        let error = parse("name = 'a' AND").unwrap_err();
        assert_eq!(error.position, 14);
        let error = parse("name == 'a'").unwrap_err();
        assert_eq!(error.position, 6);
        assert!(parse("name = 'unterminated").is_err());
        assert!(parse("name = 'a' extra").is_err());
        assert!(parse("name NOT = 'a'").is_err());
    }

    #[test]
    fn typed_properties_refuse_other_literals() {
        let error = parse("hardware_type.string_value = 5.0").unwrap_err();
        assert_eq!(error.position, 29);
        assert_eq!(
            error.to_string(),
            "invalid filter query at position 29: type mismatch: hardware_type.string_value compared with number 5"
        );
        let error = parse("ok.bool_value IN (true, 'yes')").unwrap_err();
        assert!(error.to_string().contains("compared with the string 'yes'"), "{error}");
        assert!(parse("size.double_value > 5").is_ok(), "integers and doubles compare");
        assert!(parse("size.int_value <= 5.5").is_ok());
        assert!(parse("size = 'five'").is_ok(), "no suffix, no fixed type");
    }

    #[test]
    fn injection_strings_stay_literals() {
        let expr = parsed(r#"name = "'; DROP TABLE registered_model; --""#);
        assert!(matches!(expr, Expr::Compare { value: Literal::String(ref text), .. } if text.contains("DROP TABLE")));
        assert!(parse("name = 'a'; DROP TABLE x").is_err());
    }
}
