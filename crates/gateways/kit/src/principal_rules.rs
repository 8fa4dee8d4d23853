//! Kafka's `ssl.principal.mapping.rules` (KIP-371): rewrite a client certificate's
//! distinguished name into a user name, so `CN=billing,OU=services,O=Example` logs in as
//! `billing` without a user named after the whole DN. The syntax is Kafka's, so a broker's
//! existing setting can be pasted into `[tls] principal_mapping_rules`:
//!
//! ```text
//! RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/, DEFAULT
//! ```
//!
//! Rules are tried in order; a `RULE:pattern/replacement/[L|U]` applies when its pattern
//! matches the whole name, and gives the replacement (`$1` … the pattern's groups; `\` quotes
//! the next character), lower- or upper-cased with `L` or `U`; `DEFAULT` gives the name as it
//! is. When no rule applies, the certificate names no user, as Kafka's `NoMatchingRule`
//! fails the login. The patterns are Rust's `regex` syntax, which agrees with Java's for what
//! such rules use (groups, classes, lazy quantifiers) but has no look-around or
//! back-references: a rule using them is refused when the configuration loads.

use regex::{Captures, Regex};

/// Parsed rules, compared by their text (the configuration reloads compare settings).
#[derive(Debug)]
pub struct PrincipalRules {
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for PrincipalRules {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalRules {}

#[derive(Debug)]
enum Rule {
    Default,
    Rewrite {
        /// The pattern anchored at both ends: Kafka applies a rule only when it `matches()`.
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PrincipalRules {
    /// Parses Kafka's rule list; the error names the rule that does not parse.
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (rule, after) = parse_rule(rest)?;
            rules.push(rule);
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(next) => rest = next.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("invalid rule: unmatched text `{rest}`")),
            }
        }
        if rules.is_empty() {
            return Err("no rules: use DEFAULT for the name as it is".to_string());
        }
        Ok(PrincipalRules {
            source: text.to_string(),
            rules,
        })
    }

    /// The user `distinguished_name` maps to; `None` when no rule applies.
    pub fn apply(&self, distinguished_name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(distinguished_name.to_string()),
            Rule::Rewrite {
                pattern,
                replacement,
                case,
            } => {
                let captures = pattern.captures(distinguished_name)?;
                let name = expand(replacement, &captures);
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// One rule at the start of `text`, and the text after it.
fn parse_rule(text: &str) -> Result<(Rule, &str), String> {
    if let Some(rest) = text.strip_prefix("DEFAULT") {
        return Ok((Rule::Default, rest));
    }
    let invalid = || format!("invalid rule: `{text}` (RULE:pattern/replacement/[L|U] or DEFAULT)");
    let rest = text.strip_prefix("RULE:").ok_or_else(invalid)?;
    let (pattern, rest) = up_to_slash(rest).ok_or_else(invalid)?;
    let (replacement, rest) = up_to_slash(rest).ok_or_else(invalid)?;
    let (case, rest) = match rest.as_bytes().first() {
        Some(b'L') => (Case::Lower, &rest[1..]),
        Some(b'U') => (Case::Upper, &rest[1..]),
        _ => (Case::Keep, rest),
    };
    let anchored = Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid rule pattern `{pattern}`: {e}"))?;
    let rule = Rule::Rewrite {
        pattern: anchored,
        replacement: replacement.to_string(),
        case,
    };
    Ok((rule, rest))
}

/// The text up to the first `/` not quoted by `\`, and the text after that `/`.
fn up_to_slash(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if quoted => quoted = false,
            '\\' => quoted = true,
            '/' => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Java's replacement syntax, as Kafka uses it: `$n` is group n (the longest run of digits
/// that names a group; a number past the groups stays literal, as Kafka escapes it), `\x` is
/// `x`.
fn expand(replacement: &str, captures: &Captures<'_>) -> String {
    let groups = captures.len() - 1;
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '$' => {
                let mut number = None::<usize>;
                while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
                    let longer = number.unwrap_or(0) * 10 + digit as usize;
                    if longer > groups && number.is_some() {
                        break;
                    }
                    number = Some(longer);
                    chars.next();
                    if longer > groups {
                        break;
                    }
                }
                match number {
                    Some(n) if n <= groups => {
                        out.push_str(captures.get(n).map_or("", |m| m.as_str()));
                    }
                    Some(n) => {
                        out.push('$');
                        out.push_str(&n.to_string());
                    }
                    None => out.push('$'),
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own cases (SslPrincipalMapperTest).
    #[test]
    fn valid_and_invalid_rules_as_kafka_has_them() {
        for valid in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            assert!(PrincipalRules::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            "",
        ] {
            assert!(PrincipalRules::parse(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn maps_names_as_kafka_does() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, \
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, \
             RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, \
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, \
             DEFAULT",
        )
        .unwrap();
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (name, user) in cases {
            assert_eq!(rules.apply(name).as_deref(), Some(user), "{name}");
        }
    }

    #[test]
    fn quoted_slashes_and_commas_inside_patterns() {
        let rules = PrincipalRules::parse("RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            rules
                .apply("CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz")
                .as_deref(),
            Some("Tkac\\, Adam")
        );
        let slash = PrincipalRules::parse("RULE:^CN=(.*?),OU=(.*?)$/$1\\/$2/").unwrap();
        assert_eq!(slash.apply("CN=a,OU=b").as_deref(), Some("a/b"));
    }

    #[test]
    fn no_rule_applies_names_no_user() {
        let rules = PrincipalRules::parse("RULE:^CN=(.*?),OU=ops$/$1/").unwrap();
        assert_eq!(rules.apply("CN=eve,OU=guests"), None);
        // $9 past the groups stays literal, as Kafka escapes it; $12 is $1 then 2.
        let literal = PrincipalRules::parse("RULE:^CN=(.*)$/$1-$9-$12/").unwrap();
        assert_eq!(literal.apply("CN=x").as_deref(), Some("x-$9-x2"));
    }
}
