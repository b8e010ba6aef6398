//! Name patterns, matched by structure rather than by string or regex.
//!
//! A pattern is split into parts the way the name kind is structured: DNS names into labels,
//! URIs into scheme, host labels, port and path segments, email addresses into a local part
//! and domain labels, common names into dot-separated parts. A requested name is validated
//! and split the same way, and part `i` of the name must match part `i` of the pattern.
//!
//! Within a part, a pattern is a sequence of literal characters, `*` (one or more characters
//! of that part) and the placeholders `{namespace}` and `{name}`. A placeholder's value is
//! compared character for character as a literal: a `*`, `.`, `/` or `%2F` in it is just a
//! character, it can never act as a wildcard or a separator, and a value that contains a
//! separator can never match (a part never contains one). An empty value never matches.
//!
//! Decisions, each the stricter choice:
//! - DNS names are ASCII letters, digits and `-` (IDNs in their `xn--` form, compared as
//!   written); a trailing dot is refused, not normalised; comparison ignores ASCII case.
//!   A requested wildcard label `*` (leftmost only) matches only a pattern label that is
//!   exactly `*`: the names it covers are then exactly the names that pattern label allows.
//! - URIs must be `scheme://host[:port][/path]`. User info, a query, a fragment, any
//!   percent-encoding, `*`, empty, `.` and `..` segments are refused in a requested URI, and
//!   cannot be written in a pattern: the string the certificate carries is the string judged,
//!   with no normalisation for a relying party to read differently. Scheme and host ignore
//!   ASCII case, the path does not; a port must be equal (absent is not the default port).
//!   The `url` crate is deliberately not used: it implements WHATWG (browser) parsing, which
//!   strips tabs and newlines, turns `\` into `/` and resolves dot segments, so the URI it
//!   judged would not be the one signed.
//! - Email addresses are `local@domain`: a dot-atom local part (case-sensitive) and a DNS
//!   domain (case-insensitive).
//! - Common names are free text split at dots; case-sensitive. A part containing `*` (a
//!   wildcard to legacy clients) is allowed only as the whole leftmost part, and matches only
//!   a pattern part that is exactly `*`.
//! - IP addresses are compared as addresses (every IPv6 spelling of one address is the same
//!   address); IPv4-mapped IPv6 addresses and CIDRs are normalised to IPv4.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

/// What `{namespace}` and `{name}` stand for: the Certificate's namespace and name.
#[derive(Clone, Copy, Debug)]
pub struct Vars<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(String),
    Star,
    Namespace,
    Name,
}

/// One label, segment or local part of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    tokens: Vec<Token>,
}

/// One step of the reference matcher (tests): a byte, exactly one byte, any run of bytes.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Atom {
    Byte(u8),
    One,
    Any,
}

impl Part {
    /// Parse one part; `literal` says which characters may appear literally.
    fn parse(text: &str, literal: fn(char) -> bool) -> Result<Part, String> {
        let mut tokens = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '*' {
                if tokens.last() == Some(&Token::Star) {
                    return Err(format!(
                        "{text:?}: `**` is not supported (`*` matches within one label or segment)"
                    ));
                }
                tokens.push(Token::Star);
                rest = &rest[1..];
            } else if c == '{' {
                if let Some(r) = rest.strip_prefix("{namespace}") {
                    tokens.push(Token::Namespace);
                    rest = r;
                } else if let Some(r) = rest.strip_prefix("{name}") {
                    tokens.push(Token::Name);
                    rest = r;
                } else {
                    return Err(format!(
                        "{text:?}: unknown placeholder (only {{namespace}} and {{name}})"
                    ));
                }
            } else if c != '}' && literal(c) {
                match tokens.last_mut() {
                    Some(Token::Lit(s)) => s.push(c),
                    _ => tokens.push(Token::Lit(c.to_string())),
                }
                rest = &rest[c.len_utf8()..];
            } else {
                return Err(format!("{text:?}: character {c:?} is not allowed here"));
            }
        }
        Ok(Part { tokens })
    }

    fn is_star(&self) -> bool {
        self.tokens == [Token::Star]
    }

    fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `value` (one validated part of a name) matches. `fold`: ignore ASCII case.
    ///
    /// The tokens between stars are literal chunks (a placeholder contributes its value's
    /// bytes). The first chunk is a prefix, the last a suffix, the ones between are placed
    /// leftmost, each star taking at least one byte: leftmost placement leaves the most
    /// room for the rest, so it finds a match when there is one. No allocation.
    fn matches(&self, value: &str, vars: Vars<'_>, fold: bool) -> bool {
        let text = value.as_bytes();
        let stars = self.tokens.iter().filter(|t| **t == Token::Star).count();
        let mut chunks = self.tokens.split(|t| *t == Token::Star);
        let Some(first) = chunks.next() else {
            return false;
        };
        let Some(mut pos) = chunk_at(first, text, 0, vars, fold) else {
            return false;
        };
        if stars == 0 {
            return pos == text.len();
        }
        for (i, chunk) in chunks.enumerate() {
            pos += 1; // the star's first byte
            if pos > text.len() {
                return false;
            }
            let Some(len) = chunk_len(chunk, vars) else {
                return false;
            };
            if i + 1 == stars {
                // The last chunk ends the text.
                let Some(start) = text.len().checked_sub(len).filter(|s| *s >= pos) else {
                    return false;
                };
                return chunk_at(chunk, text, start, vars, fold) == Some(text.len());
            }
            let found = (pos..=text.len().saturating_sub(len))
                .find_map(|start| chunk_at(chunk, text, start, vars, fold));
            match found {
                Some(end) => pos = end,
                None => return false,
            }
        }
        false
    }

    fn render(&self, out: &mut String) {
        for token in &self.tokens {
            match token {
                Token::Lit(s) => out.push_str(s),
                Token::Star => out.push('*'),
                Token::Namespace => out.push_str("{namespace}"),
                Token::Name => out.push_str("{name}"),
            }
        }
    }
}

/// The bytes a literal token or placeholder stands for; None for a star or an empty value.
fn token_bytes<'a>(token: &'a Token, vars: Vars<'a>) -> Option<&'a [u8]> {
    let bytes = match token {
        Token::Lit(s) => s.as_bytes(),
        Token::Namespace => vars.namespace.as_bytes(),
        Token::Name => vars.name.as_bytes(),
        Token::Star => return None,
    };
    (!bytes.is_empty()).then_some(bytes)
}

fn chunk_len(chunk: &[Token], vars: Vars<'_>) -> Option<usize> {
    chunk
        .iter()
        .map(|t| token_bytes(t, vars).map(<[u8]>::len))
        .sum()
}

/// Where `chunk` ends when it matches `text` at `start`.
fn chunk_at(
    chunk: &[Token],
    text: &[u8],
    start: usize,
    vars: Vars<'_>,
    fold: bool,
) -> Option<usize> {
    let mut pos = start;
    for token in chunk {
        let bytes = token_bytes(token, vars)?;
        let end = pos.checked_add(bytes.len()).filter(|e| *e <= text.len())?;
        let here = &text[pos..end];
        let equal = if fold {
            here.eq_ignore_ascii_case(bytes)
        } else {
            here == bytes
        };
        if !equal {
            return None;
        }
        pos = end;
    }
    Some(pos)
}

/// The reference matcher the tests compare [`Part::matches`] with: wildcard matching in
/// O(pattern × text), on a mismatch the last `Any` takes one more byte.
#[cfg(test)]
fn glob(pattern: &[Atom], text: &[u8], fold: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Atom::Byte(b)) if eq(*b, text[t]) => {
                p += 1;
                t += 1;
            }
            Some(Atom::One) => {
                p += 1;
                t += 1;
            }
            Some(Atom::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    backtrack = Some((bp, bt + 1));
                    p = bp + 1;
                    t = bt + 1;
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&Atom::Any) {
        p += 1;
    }
    p == pattern.len()
}

fn is_ldh(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// The parts of a dotted pattern (DNS name, host, domain), each non-empty.
fn parse_dotted(text: &str) -> Result<Vec<Part>, String> {
    if text.is_empty() {
        return Err("empty pattern".into());
    }
    if text.ends_with('.') {
        return Err(format!("{text:?}: trailing dot"));
    }
    text.split('.')
        .map(|label| {
            let part = Part::parse(label, is_ldh)?;
            if part.is_empty() {
                return Err(format!("{text:?}: empty label"));
            }
            Ok(part)
        })
        .collect()
}

fn render_dotted(parts: &[Part], out: &mut String) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        part.render(out);
    }
}

/// Labels match part by part; a requested `*` label only matches a pattern label `*`.
fn dotted_matches(parts: &[Part], labels: &[&str], vars: Vars<'_>) -> bool {
    parts.len() == labels.len()
        && parts.iter().zip(labels).all(|(part, label)| {
            if *label == "*" {
                part.is_star()
            } else {
                part.matches(label, vars, true)
            }
        })
}

// ---- DNS names ----

/// A validated DNS name, split into labels. The leftmost label may be the wildcard `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsName<'a> {
    labels: Vec<&'a str>,
}

impl<'a> DnsName<'a> {
    pub fn parse(name: &'a str) -> Result<Self, String> {
        Self::parse_host(name, true)
    }

    fn parse_host(name: &'a str, wildcard_ok: bool) -> Result<Self, String> {
        if name.is_empty() {
            return Err("is empty".into());
        }
        if !name.is_ascii() {
            return Err("is not ASCII (write IDNs in their xn-- form)".into());
        }
        if name.len() > 253 {
            return Err("is longer than 253 characters".into());
        }
        if name.ends_with('.') {
            return Err("ends with a dot".into());
        }
        let labels: Vec<&str> = name.split('.').collect();
        for (i, label) in labels.iter().enumerate() {
            if *label == "*" {
                if i == 0 && wildcard_ok && labels.len() > 1 {
                    continue;
                }
                return Err("has a `*` that is not a whole leftmost label".into());
            }
            let valid = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(is_ldh)
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(format!(
                    "has an invalid label {label:?} (letters, digits and inner `-`, 1-63 characters)"
                ));
            }
        }
        Ok(DnsName { labels })
    }
}

/// A DNS name pattern such as `*.{namespace}.svc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsPattern {
    parts: Vec<Part>,
}

impl DnsPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > 253 {
            return Err(format!("{text:?}: longer than 253 characters"));
        }
        Ok(DnsPattern {
            parts: parse_dotted(text)?,
        })
    }

    pub fn matches(&self, name: &DnsName<'_>, vars: Vars<'_>) -> bool {
        dotted_matches(&self.parts, &name.labels, vars)
    }
}

impl std::fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        render_dotted(&self.parts, &mut out);
        f.write_str(&out)
    }
}

// ---- common names ----

fn is_cn_char(c: char) -> bool {
    !c.is_control() && c != '*' && c != '{' && c != '}'
}

/// A validated common name, split at dots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonName<'a> {
    parts: Vec<&'a str>,
}

impl<'a> CommonName<'a> {
    pub fn parse(name: &'a str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("is empty".into());
        }
        if name.chars().any(char::is_control) {
            return Err("contains a control character".into());
        }
        let parts: Vec<&str> = name.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if part.contains('*') && !(i == 0 && *part == "*" && parts.len() > 1) {
                return Err("has a `*` that is not a whole leftmost part".into());
            }
        }
        Ok(CommonName { parts })
    }
}

/// A common name pattern such as `{name}` or `*.{namespace}.svc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonNamePattern {
    parts: Vec<Part>,
}

impl CommonNamePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.chars().count() > 64 {
            return Err(format!("{text:?}: must be 1-64 characters"));
        }
        let parts = text
            .split('.')
            .map(|p| Part::parse(p, is_cn_char))
            .collect::<Result<_, _>>()?;
        Ok(CommonNamePattern { parts })
    }

    pub fn matches(&self, name: &CommonName<'_>, vars: Vars<'_>) -> bool {
        self.parts.len() == name.parts.len()
            && self.parts.iter().zip(&name.parts).all(|(part, value)| {
                if *value == "*" {
                    part.is_star()
                } else {
                    part.matches(value, vars, false)
                }
            })
    }
}

impl std::fmt::Display for CommonNamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        render_dotted(&self.parts, &mut out);
        f.write_str(&out)
    }
}

// ---- URIs ----

/// Characters a URI path segment may hold: RFC 3986 `pchar` without percent-encoding (and
/// without `*`, which patterns use).
fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=:@".contains(c)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("has an invalid port {port:?}"));
    }
    port.parse()
        .map_err(|_| format!("has an invalid port {port:?}"))
}

/// Split `scheme://authority/path` without judging the parts. Refuses what must never be
/// in a URI SAN or pattern: non-ASCII, whitespace and control characters, `%`, `?`, `#`.
fn split_uri(uri: &str) -> Result<(&str, &str, &str), String> {
    if !uri.is_ascii() {
        return Err("is not ASCII".into());
    }
    if let Some(c) = uri.chars().find(|c| c.is_ascii_control() || *c == ' ') {
        return Err(format!("contains the character {c:?}"));
    }
    if uri.contains('%') {
        return Err("contains percent-encoding (refused: one identity, one spelling)".into());
    }
    if uri.contains('?') {
        return Err("has a query (refused)".into());
    }
    if uri.contains('#') {
        return Err("has a fragment (refused)".into());
    }
    if uri.contains('\\') {
        return Err("contains a backslash".into());
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("is not of the form scheme://host/path".into());
    };
    if !is_scheme(scheme) {
        return Err(format!("has an invalid scheme {scheme:?}"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("has user info (refused)".into());
    }
    Ok((scheme, authority, path))
}

/// Split an authority into host and optional port text; the host keeps its brackets.
fn split_authority(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err("has an unterminated [IPv6] host".into());
        };
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => match rest.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("has garbage after its [IPv6] host".into()),
            },
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_ip_host(host: &str) -> Option<Result<IpAddr, String>> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return Some(
            inner
                .parse::<Ipv6Addr>()
                .map(|ip| IpAddr::V6(ip).to_canonical())
                .map_err(|_| format!("has an invalid IPv6 host {host:?}")),
        );
    }
    host.parse::<Ipv4Addr>().ok().map(|ip| Ok(IpAddr::V4(ip)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum UriHost<'a> {
    Name(DnsName<'a>),
    Ip(IpAddr),
}

/// A validated URI: scheme, host, port and path segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    scheme: &'a str,
    host: UriHost<'a>,
    port: Option<u16>,
    segments: Vec<&'a str>,
}

/// Path segments of `path` (`""` and `"/"` have none); `check` validates one segment.
fn split_path<'a, T>(
    path: &'a str,
    mut check: impl FnMut(&'a str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if path.is_empty() || path == "/" {
        return Ok(Vec::new());
    }
    let Some(path) = path.strip_prefix('/') else {
        return Err("has a path that does not start with /".into());
    };
    path.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return Err("has an empty path segment (// or a trailing /)".into());
            }
            if segment == "." || segment == ".." {
                return Err(format!("has a {segment:?} path segment"));
            }
            check(segment)
        })
        .collect()
}

impl<'a> Uri<'a> {
    pub fn parse(uri: &'a str) -> Result<Self, String> {
        if uri.contains('*') {
            return Err("contains `*`".into());
        }
        let (scheme, authority, path) = split_uri(uri)?;
        let (host, port) = split_authority(authority)?;
        let port = port.map(parse_port).transpose()?;
        let host = match parse_ip_host(host) {
            Some(ip) => UriHost::Ip(ip?),
            None => UriHost::Name(
                DnsName::parse_host(host, false).map_err(|e| format!("has a host that {e}"))?,
            ),
        };
        let segments = split_path(path, |segment| {
            if segment.chars().all(is_segment_char) {
                Ok(segment)
            } else {
                Err(format!(
                    "has a path segment {segment:?} with a character outside RFC 3986 pchar"
                ))
            }
        })?;
        Ok(Uri {
            scheme,
            host,
            port,
            segments,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Name(Vec<Part>),
    Ip(IpAddr),
}

/// A URI pattern such as `spiffe://cluster.local/ns/{namespace}/sa/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriPattern {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
    segments: Vec<Part>,
    /// As written, for messages.
    text: String,
}

impl UriPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |e: String| format!("{text:?} {e}");
        if text.len() > 1024 {
            return Err(fail("is longer than 1024 characters".into()));
        }
        let (scheme, authority, path) = split_uri(text).map_err(fail)?;
        if scheme.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(fail(
                "has an upper-case scheme (write it in lower case)".into(),
            ));
        }
        let (host, port) = split_authority(authority).map_err(fail)?;
        let port = port.map(parse_port).transpose().map_err(fail)?;
        let host = match parse_ip_host(host) {
            Some(ip) => HostPattern::Ip(ip.map_err(fail)?),
            None => HostPattern::Name(parse_dotted(host).map_err(fail)?),
        };
        let segments =
            split_path(path, |segment| Part::parse(segment, is_segment_char)).map_err(fail)?;
        Ok(UriPattern {
            scheme: scheme.to_string(),
            host,
            port,
            segments,
            text: text.to_string(),
        })
    }

    pub fn matches(&self, uri: &Uri<'_>, vars: Vars<'_>) -> bool {
        let host = match (&self.host, &uri.host) {
            (HostPattern::Name(parts), UriHost::Name(name)) => {
                dotted_matches(parts, &name.labels, vars)
            }
            (HostPattern::Ip(a), UriHost::Ip(b)) => a == b,
            _ => false,
        };
        host && self.scheme.eq_ignore_ascii_case(uri.scheme)
            && self.port == uri.port
            && self.segments.len() == uri.segments.len()
            && self
                .segments
                .iter()
                .zip(&uri.segments)
                .all(|(part, segment)| part.matches(segment, vars, false))
    }
}

impl std::fmt::Display for UriPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

// ---- email addresses ----

/// RFC 5322 `atext` (without `*`, `{`, `}`) and `.`.
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'+/=?^_`|~.-".contains(c)
}

/// A validated email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email<'a> {
    local: &'a str,
    domain: DnsName<'a>,
}

impl<'a> Email<'a> {
    pub fn parse(address: &'a str) -> Result<Self, String> {
        let Some((local, domain)) = address.split_once('@') else {
            return Err("has no @".into());
        };
        if domain.contains('@') {
            return Err("has more than one @".into());
        }
        let dot_atom = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(is_local_char)
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !dot_atom {
            return Err(format!(
                "has a local part {local:?} that is not a plain dot-atom (quoted strings, `*`, braces and control characters are refused)"
            ));
        }
        let domain =
            DnsName::parse_host(domain, false).map_err(|e| format!("has a domain that {e}"))?;
        Ok(Email { local, domain })
    }
}

/// An email pattern such as `{name}@{namespace}.example.com`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailPattern {
    local: Part,
    domain: Vec<Part>,
    text: String,
}

impl EmailPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |e: String| format!("{text:?}: {e}");
        let Some((local, domain)) = text.split_once('@') else {
            return Err(fail("no @".into()));
        };
        let local = Part::parse(local, is_local_char).map_err(fail)?;
        if local.is_empty() {
            return Err(fail("empty local part".into()));
        }
        Ok(EmailPattern {
            local,
            domain: parse_dotted(domain).map_err(fail)?,
            text: text.to_string(),
        })
    }

    pub fn matches(&self, email: &Email<'_>, vars: Vars<'_>) -> bool {
        self.local.matches(email.local, vars, false)
            && dotted_matches(&self.domain, &email.domain.labels, vars)
    }
}

impl std::fmt::Display for EmailPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

// ---- IP addresses ----

/// Parse a requested IP address; IPv4-mapped IPv6 becomes IPv4.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| "is not an IPv4 or IPv6 address".into())
}

/// A CIDR; an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("{text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/64"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "{text:?} has host bits set (write {})",
                net.trunc()
            ));
        }
        if let IpNet::V6(v6) = net
            && let Some(v4) = v6.addr().to_ipv4_mapped()
            && v6.prefix_len() >= 96
        {
            let v4 = Ipv4Net::new(v4, v6.prefix_len() - 96).map_err(|e| e.to_string())?;
            return Ok(Cidr(IpNet::V4(v4)));
        }
        Ok(Cidr(net))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: Vars<'static> = Vars {
        namespace: "a",
        name: "web",
    };

    fn vars<'a>(namespace: &'a str, name: &'a str) -> Vars<'a> {
        Vars { namespace, name }
    }

    fn dns(pattern: &str, name: &str, vars: Vars<'_>) -> bool {
        let pattern = DnsPattern::parse(pattern).unwrap();
        DnsName::parse(name).is_ok_and(|n| pattern.matches(&n, vars))
    }

    fn uri(pattern: &str, value: &str, vars: Vars<'_>) -> bool {
        let pattern = UriPattern::parse(pattern).unwrap();
        Uri::parse(value).is_ok_and(|u| pattern.matches(&u, vars))
    }

    fn email(pattern: &str, value: &str, vars: Vars<'_>) -> bool {
        let pattern = EmailPattern::parse(pattern).unwrap();
        Email::parse(value).is_ok_and(|e| pattern.matches(&e, vars))
    }

    fn cn(pattern: &str, value: &str, vars: Vars<'_>) -> bool {
        let pattern = CommonNamePattern::parse(pattern).unwrap();
        CommonName::parse(value).is_ok_and(|c| pattern.matches(&c, vars))
    }

    const SVC: &str = "*.{namespace}.svc";
    const SPIFFE: &str = "spiffe://cluster.local/ns/{namespace}/sa/*";

    #[test]
    fn glob_star_is_one_or_more_characters_of_one_part() {
        assert!(dns(SVC, "orders.a.svc", VARS));
        assert!(dns("web-*.{namespace}.svc", "web-1.a.svc", VARS));
        assert!(!dns("web-*.{namespace}.svc", "web-.a.svc", VARS));
        assert!(dns("*-api.x", "a-b-api.x", VARS));
        assert!(dns("a*b*c.x", "aXbYbZc.x", VARS));
        assert!(!dns("a*b*c.x", "abc.x", VARS));
        // `*` never crosses a label.
        assert!(!dns(SVC, "x.y.a.svc", VARS));
        assert!(!dns(SVC, "a.svc", VARS));
        assert!(!dns("*", "a.b", VARS));
        // Paths: one segment.
        assert!(uri(SPIFFE, "spiffe://cluster.local/ns/a/sa/orders", VARS));
        assert!(!uri(
            SPIFFE,
            "spiffe://cluster.local/ns/a/sa/orders/x",
            VARS
        ));
        assert!(!uri(SPIFFE, "spiffe://cluster.local/ns/a/sa", VARS));
    }

    #[test]
    fn the_namespace_placeholder_is_the_certificates_namespace_only() {
        assert!(!dns(SVC, "billing.payments.svc", VARS));
        assert!(!uri(
            SPIFFE,
            "spiffe://cluster.local/ns/payments/sa/billing",
            VARS
        ));
        assert!(uri(
            SPIFFE,
            "spiffe://cluster.local/ns/payments/sa/billing",
            vars("payments", "x")
        ));
        // Prefixes and suffixes of the namespace are other namespaces.
        assert!(!dns(SVC, "x.ab.svc", VARS));
        assert!(!dns(SVC, "x.ba.svc", VARS));
        assert!(!uri(SPIFFE, "spiffe://cluster.local/ns/a-b/sa/x", VARS));
    }

    #[test]
    fn substituted_values_are_literals_whatever_they_contain() {
        // A value with `*` does not become a wildcard (and cannot be valid in a name).
        for hostile in [
            "*", "p*", "a.b", "a/b", "a%2Fb", "A", "a.", ".", "..", "a b",
        ] {
            let v = vars(hostile, hostile);
            assert!(!dns(SVC, "x.payments.svc", v), "{hostile}");
            assert!(!dns("{name}.x", "payments.x", v), "{hostile}");
            assert!(
                !uri(SPIFFE, "spiffe://cluster.local/ns/payments/sa/x", v),
                "{hostile}"
            );
            assert!(
                !uri(
                    "spiffe://cluster.local/ns/{namespace}/sa/{name}",
                    "spiffe://cluster.local/ns/x/sa/y",
                    v
                ),
                "{hostile}"
            );
        }
        // A namespace with a dot (impossible in Kubernetes) can never span labels or segments.
        let dotted = vars("a.b", "a.b");
        assert!(!dns(SVC, "x.a.b.svc", dotted));
        assert!(!dns("{name}.svc", "a.b.svc", dotted));
        let slashed = vars("a/sa/x", "x");
        assert!(!uri(
            "spiffe://cluster.local/ns/{namespace}",
            "spiffe://cluster.local/ns/a/sa/x",
            slashed
        ));
        // Empty values never match.
        assert!(!dns("{name}x.svc", "x.svc", vars("a", "")));
        // Upper case in the value: DNS ignores case on both sides (same names), a URI path
        // does not.
        assert!(dns(SVC, "x.a.svc", vars("A", "w")));
        assert!(!uri(SPIFFE, "spiffe://cluster.local/ns/A/sa/x", VARS));
        assert!(!uri(
            SPIFFE,
            "spiffe://cluster.local/ns/a/sa/x",
            vars("A", "w")
        ));
    }

    #[test]
    fn requested_names_cannot_smuggle_separators() {
        // `*` in a requested name is never matched by a pattern's `*` except as a whole
        // leftmost DNS label.
        assert!(dns(SVC, "*.a.svc", VARS));
        assert!(!dns("web-*.{namespace}.svc", "*.a.svc", VARS));
        assert!(!dns("{name}.{namespace}.svc", "*.a.svc", VARS));
        assert!(DnsName::parse("x.*.a.svc").is_err());
        assert!(DnsName::parse("w*.a.svc").is_err());
        assert!(Uri::parse("spiffe://cluster.local/ns/a/sa/*").is_err());
        // Encoded slashes, dot segments, empty segments.
        for bad in [
            "spiffe://cluster.local/ns/a/sa/x%2F..%2F..%2Fns%2Fpayments",
            "spiffe://cluster.local/ns/a%2Fsa%2Fx",
            "spiffe://cluster.local/ns/a/sa/x/../../../ns/payments/sa/billing",
            "spiffe://cluster.local/ns/payments/sa/../../a/sa/x",
            "spiffe://cluster.local/ns/a/sa/./x",
            "spiffe://cluster.local/ns/a//sa/x",
            "spiffe://cluster.local/ns/a/sa/x/",
            "spiffe://cluster.local\\ns\\a\\sa\\x",
            "spiffe://cluster.local/ns/a/sa/x\t",
            "spiffe://cluster.local/ns/a/sa/x\n",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
            assert!(!uri(SPIFFE, bad, VARS), "{bad}");
        }
    }

    #[test]
    fn uris_with_user_info_query_or_fragment_are_refused() {
        for bad in [
            "spiffe://evil@cluster.local/ns/a/sa/x",
            "spiffe://cluster.local@evil/ns/a/sa/x",
            "spiffe://cluster.local/ns/a/sa/x?ns=payments",
            "spiffe://cluster.local/ns/a/sa/x#/ns/payments",
            "https://user:pass@a.example/x",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
        assert!(UriPattern::parse("https://x.example/?q={name}").is_err());
        assert!(UriPattern::parse("https://u@x.example/").is_err());
        assert!(UriPattern::parse("https://x.example/#{name}").is_err());
        assert!(UriPattern::parse("https://x.example/%2F").is_err());
        assert!(UriPattern::parse("https://x.example/a/../b").is_err());
    }

    #[test]
    fn uri_scheme_host_and_port() {
        // Scheme and host ignore case; the path does not.
        assert!(uri(SPIFFE, "SPIFFE://Cluster.Local/ns/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "spiffe://cluster.local/NS/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "https://cluster.local/ns/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "spiffe://cluster.local.evil/ns/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "spiffe://evil.cluster.local/ns/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "spiffe://cluster.local./ns/a/sa/x", VARS));
        assert!(!uri(SPIFFE, "spiffe://cluster.local:443/ns/a/sa/x", VARS));
        assert!(uri(
            "https://{namespace}.example:8443/",
            "https://a.example:8443",
            VARS
        ));
        assert!(!uri(
            "https://{namespace}.example:8443/",
            "https://a.example/",
            VARS
        ));
        assert!(uri(
            "https://*.{namespace}.example/api/{name}",
            "https://x.a.example/api/web",
            VARS
        ));
        // IPv6 hosts compare as addresses; an IP host never matches a name pattern.
        assert!(uri("https://[::1]/x", "https://[0:0:0:0:0:0:0:1]/x", VARS));
        assert!(uri(
            "https://10.0.0.1/x",
            "https://[::ffff:10.0.0.1]/x",
            VARS
        ));
        assert!(!uri("https://*.*.*.*/x", "https://10.0.0.1/x", VARS));
        assert!(Uri::parse("https://[::1%eth0]/x").is_err());
        assert!(Uri::parse("https://[::1]x/").is_err());
        assert!(Uri::parse("https://a.example:99999/").is_err());
        assert!(Uri::parse("urn:uuid:1234").is_err());
    }

    #[test]
    fn dns_case_trailing_dots_and_idn() {
        assert!(dns(SVC, "ORDERS.A.SVC", VARS));
        assert!(DnsPattern::parse("*.{NAMESPACE}.svc").is_err());
        // Trailing dots are refused on both sides, not normalised.
        assert!(DnsName::parse("x.a.svc.").is_err());
        assert!(DnsPattern::parse("*.{namespace}.svc.").is_err());
        assert!(DnsName::parse("x..a.svc").is_err());
        // IDN: only the ASCII (punycode) form, compared as written.
        assert!(DnsName::parse("x.pаyments.svc").is_err()); // Cyrillic а
        assert!(DnsName::parse("x.bücher.svc").is_err());
        assert!(!dns(SVC, "x.xn--a-0fa.svc", VARS));
        assert!(dns(
            "*.xn--bcher-kva.example",
            "x.XN--BCHER-KVA.example",
            VARS
        ));
        assert!(DnsName::parse("-x.a.svc").is_err());
        assert!(DnsName::parse("x_y.a.svc").is_err());
        assert!(DnsName::parse(&format!("{}.svc", "x".repeat(64))).is_err());
    }

    #[test]
    fn patterns_are_well_formed() {
        for bad in [
            "",
            "**.a",
            "a.**",
            "*.{ns}.svc",
            "{namespace",
            "a}.b",
            "a..b",
            ".a",
            "a_b.c",
            "a/b",
        ] {
            assert!(DnsPattern::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "*",
            "*.{namespace}.svc",
            "{name}-*.x",
            "*x*.y",
            "{name}{namespace}",
        ] {
            assert!(DnsPattern::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            DnsPattern::parse("*.{namespace}.svc").unwrap().to_string(),
            "*.{namespace}.svc"
        );
        for bad in [
            "spiffe:/x",
            "*://x/y",
            "https://x/a//b",
            "https://x/a/",
            "https://[::1/",
        ] {
            assert!(UriPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(EmailPattern::parse("{name}").is_err());
        assert!(EmailPattern::parse("@x.com").is_err());
        assert!(EmailPattern::parse("a@b@x.com").is_err());
        assert!(CommonNamePattern::parse("**").is_err());
        assert!(CommonNamePattern::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn emails() {
        let p = "{name}@{namespace}.example.com";
        assert!(email(p, "web@a.example.com", VARS));
        assert!(email(p, "web@A.Example.COM", VARS));
        assert!(!email(p, "Web@a.example.com", VARS));
        assert!(!email(p, "web@payments.example.com", VARS));
        assert!(!email(p, "web@a.example.com@evil", VARS));
        assert!(!email(p, "\"web\"@a.example.com", VARS));
        assert!(!email(p, "web@a.example.com.", VARS));
        assert!(email(
            "*@{namespace}.example.com",
            "x.y@a.example.com",
            VARS
        ));
        assert!(!email("*@{namespace}.example.com", "*@a.example.com", VARS));
        assert!(!email(
            "*@{namespace}.example.com",
            "x@b.a.example.com",
            VARS
        ));
    }

    #[test]
    fn common_names() {
        assert!(cn("{name}", "web", VARS));
        assert!(!cn("{name}", "Web", VARS));
        assert!(!cn("{name}", "web.a", VARS));
        assert!(cn("{name} agent", "web agent", VARS));
        assert!(cn("*.{namespace}.svc", "x.a.svc", VARS));
        assert!(cn("*.{namespace}.svc", "*.a.svc", VARS));
        assert!(!cn("x*.{namespace}.svc", "*.a.svc", VARS));
        assert!(!cn("*", "a.b", VARS));
        assert!(CommonName::parse("w*.a.svc").is_err());
        assert!(CommonName::parse("a\nb").is_err());
        assert!(cn("Acme Inc.", "Acme Inc.", VARS));
    }

    #[test]
    fn cidrs_and_ip_forms() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(parse_ip("10.1.2.3").unwrap()));
        assert!(net.contains(parse_ip("::ffff:10.1.2.3").unwrap()));
        assert!(!net.contains(parse_ip("11.0.0.1").unwrap()));
        assert!(!net.contains(parse_ip("::a01:203").unwrap())); // IPv4-compatible, not mapped
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(mapped.contains(parse_ip("10.9.9.9").unwrap()));
        let v6 = Cidr::parse("fd00::/64").unwrap();
        assert!(v6.contains(parse_ip("fd00:0:0:0::1").unwrap()));
        assert!(v6.contains(parse_ip("FD00::0001").unwrap()));
        assert!(!v6.contains(parse_ip("fd00:0:0:1::1").unwrap()));
        assert!(Cidr::parse("10.0.0.1/8").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        for bad in [
            "010.0.0.1",
            "10.0.0.1/32",
            "[::1]",
            "::1%eth0",
            "0x0a.0.0.1",
            "10.1",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }

    /// The reference: expand the part into atoms and run the backtracking glob.
    fn reference(part: &Part, value: &str, vars: Vars<'_>, fold: bool) -> bool {
        let mut atoms = Vec::new();
        for token in &part.tokens {
            let literal = match token {
                Token::Lit(s) => s.as_str(),
                Token::Star => {
                    atoms.extend([Atom::One, Atom::Any]);
                    continue;
                }
                Token::Namespace => vars.namespace,
                Token::Name => vars.name,
            };
            if literal.is_empty() {
                return false;
            }
            atoms.extend(literal.bytes().map(Atom::Byte));
        }
        glob(&atoms, value.as_bytes(), fold)
    }

    #[test]
    fn the_chunk_matcher_agrees_with_a_reference_glob() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        let pieces = ["a", "b", "ab", "A", "*", "{namespace}", "{name}"];
        let values = ["a", "ab", "", "b*", "B"];
        let mut agreed = 0;
        for _ in 0..20_000 {
            let mut pattern = String::new();
            for _ in 0..1 + next(5) {
                pattern.push_str(pieces[next(pieces.len() as u64)]);
            }
            let Ok(part) = Part::parse(&pattern, |c| c.is_ascii_alphabetic()) else {
                continue;
            };
            let text: String = (0..next(8))
                .map(|_| ['a', 'b', 'A', '*'][next(4)])
                .collect();
            let vars = vars(values[next(5)], values[next(5)]);
            for fold in [false, true] {
                assert_eq!(
                    part.matches(&text, vars, fold),
                    reference(&part, &text, vars, fold),
                    "{pattern:?} {text:?} {vars:?} fold={fold}"
                );
                agreed += 1;
            }
        }
        assert!(agreed > 10_000, "{agreed}");
    }

    #[test]
    fn glob_is_linear_enough_on_hostile_input() {
        let pattern = DnsPattern::parse("*a*a*a*a*a*a*a*b.x").unwrap();
        let name = format!("{}.x", "a".repeat(63));
        let start = std::time::Instant::now();
        assert!(!dns(&pattern.to_string(), &name, VARS));
        assert!(start.elapsed() < std::time::Duration::from_millis(50));
    }
}
