//! Rules as data: port lists (`rules/ports.toml`) and byte signatures
//! (`rules/signatures.toml`), validated at load with errors naming file, line and field.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Class, Proto};

/// The rule files compiled into the binary, used when no `--rules` directory is given.
pub const BUILTIN_PORTS: &str = include_str!("../../rules/ports.toml");
pub const BUILTIN_SIGNATURES: &str = include_str!("../../rules/signatures.toml");
pub const BUILTIN_SERVICES: &str = include_str!("../../rules/services.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// A port rule: bytes on these ports are counted in the port view, and a flow on them with no
/// payload evidence either way gets a `port` verdict.
#[derive(Debug, Clone)]
pub struct PortRule {
    pub id: String,
    pub transport: Transport,
    pub ranges: Vec<(u16, u16)>,
    pub proto: Proto,
    pub reference: String,
}

/// A well-known service's ports: never learned as a peer, never tracker-shaped on UDP.
#[derive(Debug, Clone)]
pub struct ServiceRule {
    pub id: String,
    pub transport: Transport,
    pub ranges: Vec<(u16, u16)>,
    pub reference: String,
}

/// A byte signature at a fixed offset from the start of what one side sends.
#[derive(Debug, Clone)]
pub struct Signature {
    pub id: String,
    pub transport: Transport,
    pub offset: usize,
    pub bytes: Vec<u8>,
    pub class: Class,
    /// For class `Bittorrent`: the protocol; for `Other`: `Proto::Other`.
    pub proto: Proto,
    pub reference: String,
}

/// A rule file that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: field `{}`: {}",
                self.file, self.line, self.field, self.message
            )
        }
    }
}

impl std::error::Error for RuleError {}

/// The loaded rule set, with per-port lookup tables for the hot path.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ports: Vec<PortRule>,
    pub signatures: Vec<Signature>,
    pub services: Vec<ServiceRule>,
    /// Per port: bit 0 a TCP service, bit 1 a UDP service.
    service_port: Vec<u8>,
    /// Index + 1 of the port rule for each TCP / UDP port; 0 for none.
    tcp_port: Vec<u8>,
    udp_port: Vec<u8>,
    /// How many bytes from the start of a stream the signatures look at.
    pub max_extent: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortsFile {
    #[serde(default)]
    port: Vec<PortEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortEntry {
    id: Spanned<String>,
    transport: Spanned<String>,
    ports: Spanned<Vec<PortSpec>>,
    proto: Spanned<String>,
    reference: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    #[serde(default)]
    service: Vec<ServiceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    id: Spanned<String>,
    transport: Spanned<String>,
    ports: Spanned<Vec<PortSpec>>,
    reference: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortSpec {
    One(i64),
    Range(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignaturesFile {
    #[serde(default)]
    signature: Vec<SignatureEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureEntry {
    id: Spanned<String>,
    reference: Spanned<String>,
    transport: Spanned<String>,
    offset: Spanned<i64>,
    pattern: Spanned<String>,
    class: Spanned<String>,
    proto: Option<Spanned<String>>,
}

/// Signatures may look this far into a stream at most (the probe buffer's size).
pub const MAX_EXTENT: usize = 128;

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err<T>(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> Result<T, RuleError> {
        Err(RuleError {
            file: self.file.to_string(),
            line: self.line_of(span),
            field: field.to_string(),
            message: message.into(),
        })
    }

    fn parse_error(&self, e: toml::de::Error) -> RuleError {
        let line = e.span().map(|s| self.line_of(s)).unwrap_or(1);
        RuleError {
            file: self.file.to_string(),
            line,
            field: String::new(),
            message: e.message().to_string(),
        }
    }

    fn transport(&self, s: &Spanned<String>) -> Result<Transport, RuleError> {
        match s.get_ref().as_str() {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            other => self.err(
                s.span(),
                "transport",
                format!("`{other}` is not one of tcp, udp"),
            ),
        }
    }

    fn text_field(&self, s: &Spanned<String>, field: &str) -> Result<String, RuleError> {
        if s.get_ref().trim().is_empty() {
            return self.err(s.span(), field, "must not be empty");
        }
        Ok(s.get_ref().clone())
    }

    fn bt_proto(&self, s: &Spanned<String>) -> Result<Proto, RuleError> {
        match Proto::parse(s.get_ref()) {
            Some(p) if p.class() == Class::Bittorrent => Ok(p),
            _ => self.err(
                s.span(),
                "proto",
                format!(
                    "`{}` is not a BitTorrent protocol ({})",
                    s.get_ref(),
                    Proto::bittorrent_names().join(", ")
                ),
            ),
        }
    }
}

fn check_unique_id<'a>(
    ctx: &Ctx<'_>,
    seen: &mut Vec<&'a str>,
    id: &'a Spanned<String>,
) -> Result<(), RuleError> {
    let s = id.get_ref().as_str();
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return ctx.err(
            id.span(),
            "id",
            "must be non-empty and use only letters, digits, '-' and '_'",
        );
    }
    if seen.contains(&s) {
        return ctx.err(id.span(), "id", format!("`{s}` is used twice"));
    }
    seen.push(s);
    Ok(())
}

fn parse_port(ctx: &Ctx<'_>, span: Range<usize>, v: i64) -> Result<u16, RuleError> {
    match u16::try_from(v) {
        Ok(p) if p > 0 => Ok(p),
        _ => ctx.err(span, "ports", format!("{v} is not a port number (1-65535)")),
    }
}

/// The `ports` field of a rule: numbers and `a-b` ranges.
fn parse_ranges(
    ctx: &Ctx<'_>,
    ports: &Spanned<Vec<PortSpec>>,
) -> Result<Vec<(u16, u16)>, RuleError> {
    let span = ports.span();
    if ports.get_ref().is_empty() {
        return ctx.err(span, "ports", "must list at least one port");
    }
    let mut ranges = Vec::new();
    for spec in ports.get_ref() {
        let r = match spec {
            PortSpec::One(v) => {
                let p = parse_port(ctx, span.clone(), *v)?;
                (p, p)
            }
            PortSpec::Range(s) => {
                let Some((a, b)) = s.split_once('-') else {
                    return ctx.err(
                        span,
                        "ports",
                        format!("`{s}` is not a port or an a-b range"),
                    );
                };
                let parse = |t: &str| t.trim().parse::<i64>().ok();
                let (Some(a), Some(b)) = (parse(a), parse(b)) else {
                    return ctx.err(
                        span,
                        "ports",
                        format!("`{s}` is not a port or an a-b range"),
                    );
                };
                let (a, b) = (
                    parse_port(ctx, span.clone(), a)?,
                    parse_port(ctx, span.clone(), b)?,
                );
                if a > b {
                    return ctx.err(span, "ports", format!("range `{s}` runs backwards"));
                }
                (a, b)
            }
        };
        ranges.push(r);
    }
    Ok(ranges)
}

fn load_services(ctx: &Ctx<'_>) -> Result<Vec<ServiceRule>, RuleError> {
    let file: ServicesFile = toml::from_str(ctx.text).map_err(|e| ctx.parse_error(e))?;
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in &file.service {
        check_unique_id(ctx, &mut seen, &e.id)?;
        out.push(ServiceRule {
            id: e.id.get_ref().clone(),
            transport: ctx.transport(&e.transport)?,
            ranges: parse_ranges(ctx, &e.ports)?,
            reference: ctx.text_field(&e.reference, "reference")?,
        });
    }
    Ok(out)
}

fn load_ports(ctx: &Ctx<'_>) -> Result<Vec<PortRule>, RuleError> {
    let file: PortsFile = toml::from_str(ctx.text).map_err(|e| ctx.parse_error(e))?;
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in &file.port {
        check_unique_id(ctx, &mut seen, &e.id)?;
        let transport = ctx.transport(&e.transport)?;
        let proto = ctx.bt_proto(&e.proto)?;
        let reference = ctx.text_field(&e.reference, "reference")?;
        let ranges = parse_ranges(ctx, &e.ports)?;
        out.push(PortRule {
            id: e.id.get_ref().clone(),
            transport,
            ranges,
            proto,
            reference,
        });
    }
    Ok(out)
}

/// Parses the Snort-style content syntax: text with `|hex bytes|` sections.
pub fn parse_pattern(p: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut in_hex = false;
    for (i, part) in p.split('|').enumerate() {
        in_hex = i % 2 == 1;
        if in_hex {
            for tok in part.split_ascii_whitespace() {
                if tok.len() % 2 != 0 {
                    return Err(format!("hex `{tok}` has an odd number of digits"));
                }
                for k in (0..tok.len()).step_by(2) {
                    let byte = tok
                        .get(k..k + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("`{tok}` is not hex"))?;
                    out.push(byte);
                }
            }
        } else {
            out.extend_from_slice(part.as_bytes());
        }
    }
    if in_hex {
        return Err("a `|` hex section is not closed".into());
    }
    if out.is_empty() {
        return Err("pattern matches nothing".into());
    }
    Ok(out)
}

fn load_signatures(ctx: &Ctx<'_>) -> Result<Vec<Signature>, RuleError> {
    let file: SignaturesFile = toml::from_str(ctx.text).map_err(|e| ctx.parse_error(e))?;
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in &file.signature {
        check_unique_id(ctx, &mut seen, &e.id)?;
        let transport = ctx.transport(&e.transport)?;
        let reference = ctx.text_field(&e.reference, "reference")?;
        let bytes = parse_pattern(e.pattern.get_ref())
            .or_else(|m| ctx.err(e.pattern.span(), "pattern", m))?;
        let offset = match usize::try_from(*e.offset.get_ref()) {
            Ok(o) if o + bytes.len() <= MAX_EXTENT => o,
            _ => {
                return ctx.err(
                    e.offset.span(),
                    "offset",
                    format!(
                        "offset plus pattern length must be within the first {MAX_EXTENT} bytes"
                    ),
                )
            }
        };
        let (class, proto) = match (e.class.get_ref().as_str(), &e.proto) {
            ("bittorrent", Some(p)) => (Class::Bittorrent, ctx.bt_proto(p)?),
            ("bittorrent", None) => {
                return ctx.err(e.class.span(), "proto", "class bittorrent needs a proto")
            }
            ("other", None) => (Class::Other, Proto::Other),
            ("other", Some(p)) => return ctx.err(p.span(), "proto", "class other takes no proto"),
            (c, _) => {
                return ctx.err(
                    e.class.span(),
                    "class",
                    format!("`{c}` is not one of bittorrent, other"),
                )
            }
        };
        out.push(Signature {
            id: e.id.get_ref().clone(),
            transport,
            offset,
            bytes,
            class,
            proto,
            reference,
        });
    }
    Ok(out)
}

fn service_table(services: &[ServiceRule]) -> Vec<u8> {
    let mut t = vec![0u8; 65536];
    for s in services {
        let bit = match s.transport {
            Transport::Tcp => 1,
            Transport::Udp => 2,
        };
        for &(a, b) in &s.ranges {
            for p in a..=b {
                t[usize::from(p)] |= bit;
            }
        }
    }
    t
}

impl Rules {
    /// The rules compiled into the binary.
    pub fn builtin() -> Result<Rules, RuleError> {
        Rules::from_texts(
            ("rules/ports.toml", BUILTIN_PORTS),
            ("rules/signatures.toml", BUILTIN_SIGNATURES),
        )
    }

    /// Replaces the service list (`services.toml`), checked as the other rule files are.
    pub fn with_services(mut self, file: &str, text: &str) -> Result<Rules, RuleError> {
        self.services = load_services(&Ctx { file, text })?;
        self.service_port = service_table(&self.services);
        Ok(self)
    }

    /// Whether a port is a well-known service's (see `rules/services.toml`).
    #[inline]
    pub fn is_service(&self, transport: Transport, port: u16) -> bool {
        let bit = match transport {
            Transport::Tcp => 1,
            Transport::Udp => 2,
        };
        self.service_port[usize::from(port)] & bit != 0
    }

    /// Loads `ports.toml` and `signatures.toml` from a directory.
    pub fn load_dir(dir: &Path) -> Result<Rules, RuleError> {
        let read = |name: &str| -> Result<(String, String), RuleError> {
            let path = dir.join(name);
            let shown = path.display().to_string();
            std::fs::read_to_string(&path)
                .map(|t| (shown.clone(), t))
                .map_err(|e| RuleError {
                    file: shown,
                    line: 0,
                    field: String::new(),
                    message: format!("cannot read: {e}"),
                })
        };
        let (pf, pt) = read("ports.toml")?;
        let (sf, st) = read("signatures.toml")?;
        let rules = Rules::from_texts((&pf, &pt), (&sf, &st))?;
        // A rule directory made before services.toml existed keeps the built-in list.
        if dir.join("services.toml").exists() {
            let (vf, vt) = read("services.toml")?;
            rules.with_services(&vf, &vt)
        } else {
            Ok(rules)
        }
    }

    pub fn from_texts(ports: (&str, &str), sigs: (&str, &str)) -> Result<Rules, RuleError> {
        let ports = load_ports(&Ctx {
            file: ports.0,
            text: ports.1,
        })?;
        let signatures = load_signatures(&Ctx {
            file: sigs.0,
            text: sigs.1,
        })?;
        if ports.len() > 254 {
            return Err(RuleError {
                file: "ports.toml".into(),
                line: 0,
                field: String::new(),
                message: "at most 254 port rules".into(),
            });
        }
        let mut tcp_port = vec![0u8; 65536];
        let mut udp_port = vec![0u8; 65536];
        for (i, r) in ports.iter().enumerate() {
            let table = match r.transport {
                Transport::Tcp => &mut tcp_port,
                Transport::Udp => &mut udp_port,
            };
            for &(a, b) in &r.ranges {
                for p in a..=b {
                    // The first rule naming a port keeps it.
                    if table[usize::from(p)] == 0 {
                        table[usize::from(p)] = (i + 1) as u8;
                    }
                }
            }
        }
        let max_extent = signatures
            .iter()
            .map(|s| s.offset + s.bytes.len())
            .max()
            .unwrap_or(0);
        let services = load_services(&Ctx {
            file: "rules/services.toml",
            text: BUILTIN_SERVICES,
        })?;
        Ok(Rules {
            ports,
            signatures,
            service_port: service_table(&services),
            services,
            tcp_port,
            udp_port,
            max_extent,
        })
    }

    /// The port rule for one port, as an index into `ports`.
    #[inline]
    pub fn port_rule(&self, transport: Transport, port: u16) -> Option<usize> {
        let t = match transport {
            Transport::Tcp => &self.tcp_port,
            Transport::Udp => &self.udp_port,
        };
        match t[usize::from(port)] {
            0 => None,
            i => Some(usize::from(i) - 1),
        }
    }

    /// The port rule matching a packet: the destination port first, then the source port.
    #[inline]
    pub fn port_rule_for(&self, transport: Transport, sport: u16, dport: u16) -> Option<usize> {
        self.port_rule(transport, dport)
            .or_else(|| self.port_rule(transport, sport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG_OK: &str = "[[signature]]\nid = \"a\"\nreference = \"r\"\ntransport = \"tcp\"\noffset = 0\npattern = \"|13|Bit\"\nclass = \"bittorrent\"\nproto = \"peerwire\"\n";
    const PORTS_OK: &str = "[[port]]\nid = \"p\"\ntransport = \"tcp\"\nports = [\"6881-6889\", 51413]\nproto = \"peerwire\"\nreference = \"r\"\n";

    fn sig_err(text: &str) -> RuleError {
        Rules::from_texts(("ports.toml", PORTS_OK), ("sigs.toml", text)).expect_err("should fail")
    }

    fn port_err(text: &str) -> RuleError {
        Rules::from_texts(("ports.toml", text), ("sigs.toml", SIG_OK)).expect_err("should fail")
    }

    #[test]
    fn builtin_rules_load() {
        let r = Rules::builtin().expect("builtin rules");
        assert!(r.ports.len() >= 5);
        assert_eq!(
            r.port_rule(Transport::Tcp, 6885)
                .map(|i| r.ports[i].id.as_str()),
            Some("peer-6881-6889-tcp")
        );
        assert_eq!(r.port_rule(Transport::Tcp, 6890), None);
        assert_eq!(
            r.port_rule_for(Transport::Udp, 6771, 40000)
                .map(|i| r.ports[i].proto),
            Some(Proto::Lsd)
        );
        assert_eq!(r.signatures[0].bytes, b"\x13BitTorrent protocol");
    }

    #[test]
    fn patterns() {
        assert_eq!(parse_pattern("|13|Bit").as_deref(), Ok(&b"\x13Bit"[..]));
        assert_eq!(parse_pattern("a|0d 0A|b").as_deref(), Ok(&b"a\r\nb"[..]));
        assert_eq!(parse_pattern("|0001|").as_deref(), Ok(&b"\x00\x01"[..]));
        assert!(parse_pattern("|0|").is_err());
        assert!(parse_pattern("|zz|").is_err());
        assert!(parse_pattern("|13").is_err());
        assert!(parse_pattern("").is_err());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = sig_err(&SIG_OK.replace("transport = \"tcp\"", "transport = \"sctp\""));
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("sigs.toml", 4, "transport")
        );
        let e = sig_err(&SIG_OK.replace("|13|Bit", "|1|Bit"));
        assert_eq!((e.line, e.field.as_str()), (6, "pattern"));
        let e = sig_err(&SIG_OK.replace("offset = 0", "offset = 200"));
        assert_eq!((e.line, e.field.as_str()), (5, "offset"));
        let e = sig_err(&SIG_OK.replace("proto = \"peerwire\"", "proto = \"smtp\""));
        assert_eq!((e.line, e.field.as_str()), (8, "proto"));
        let e = sig_err(&format!("{SIG_OK}\n{SIG_OK}"));
        assert_eq!((e.line, e.field.as_str()), (11, "id"));
        let e = sig_err(&SIG_OK.replace("offset = 0\n", "offset = 0\ncolour = 1\n"));
        assert_eq!(e.line, 6, "{e}");
        let e = sig_err("[[signature]\n");
        assert_eq!(e.line, 1, "{e}");

        let e = port_err(&PORTS_OK.replace("6881-6889", "6889-6881"));
        assert_eq!(
            (e.file.as_str(), e.line, e.field.as_str()),
            ("ports.toml", 4, "ports")
        );
        let e = port_err(&PORTS_OK.replace("51413", "70000"));
        assert_eq!((e.line, e.field.as_str()), (4, "ports"));
        let e = port_err(&PORTS_OK.replace("reference = \"r\"", "reference = \" \""));
        assert_eq!((e.line, e.field.as_str()), (6, "reference"));
        assert!(
            e.to_string().starts_with("ports.toml:6: field `reference`"),
            "{e}"
        );
    }
}
