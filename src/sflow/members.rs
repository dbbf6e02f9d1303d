//! `--members FILE`: which exchange member a sample belongs to, by the agent and ingress port
//! it was sampled on, else by its frame's source MAC address. The file maps ports and MAC
//! addresses to member names; only the names ever leave the process (as the `member` tag of
//! the series and port view), never an address.
//!
//! ```toml
//! [[member]]
//! name = "as64500-example"
//! macs = ["02:00:00:00:00:01"]
//! ports = [{ agent = "192.0.2.1", if_index = 5 }, { agent = "2001:db8::1", sub_agent = 1, if_index = 7 }]
//! ```

use std::fmt;
use std::ops::Range;
use std::path::Path;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use serde::Deserialize;
use toml::Spanned;

use crate::aggregate::members::{MAX_MEMBER, MEMBER_FIRST, MEMBER_UNKNOWN};
use crate::decode::{v4_addr, Addr};

/// Members a file may name (the member index shares a held count's 16-bit tag with the
/// direction).
pub const MAX_MEMBERS: usize = (MAX_MEMBER - MEMBER_FIRST + 1) as usize;
/// MAC addresses, and ports, a file may map (each).
pub const MAX_MAPPINGS: usize = 1 << 16;
/// Longest member name.
pub const MAX_NAME: usize = 64;
/// The name of the samples no entry matched (reserved).
pub const UNKNOWN: &str = "unknown";

/// A members file that failed validation: file, line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for MembersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for MembersError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    member: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<String>,
    #[serde(default)]
    macs: Vec<Spanned<String>>,
    #[serde(default)]
    ports: Vec<Spanned<Port>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Port {
    agent: Spanned<String>,
    #[serde(default)]
    sub_agent: Option<u32>,
    if_index: Spanned<u32>,
}

/// A port key: agent address, sub-agent (`u64::MAX` for any) and ifIndex.
type PortKey = (Addr, u64, u32);
const ANY_SUB_AGENT: u64 = u64::MAX;

/// The loaded members: names by index and the lookup tables.
#[derive(Debug, Clone, Default)]
pub struct Members {
    /// Member names, by member index − [`MEMBER_FIRST`].
    names: Vec<String>,
    ports: HashMap<PortKey, u16, FixedState>,
    macs: HashMap<u64, u16, FixedState>,
}

impl Members {
    /// Reads and validates a members file.
    pub fn load(path: &Path) -> Result<Members, MembersError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MembersError {
            file: file.clone(),
            line: 1,
            message: e.to_string(),
        })?;
        Members::parse(&file, &text)
    }

    /// Parses a members file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Members, MembersError> {
        let line_of = |span: Range<usize>| {
            let end = span.start.min(text.len());
            text[..end].bytes().filter(|&b| b == b'\n').count() + 1
        };
        let err = |span: Range<usize>, message: String| MembersError {
            file: file.to_string(),
            line: line_of(span),
            message,
        };
        let parsed: File = toml::from_str(text).map_err(|e| MembersError {
            file: file.to_string(),
            line: e.span().map(&line_of).unwrap_or(1),
            message: e.message().to_string(),
        })?;
        if parsed.member.len() > MAX_MEMBERS {
            let span = parsed.member[MAX_MEMBERS].name.span();
            return Err(err(
                span,
                format!("more than {MAX_MEMBERS} members (the limit)"),
            ));
        }
        let mut m = Members::default();
        let mut name_line: HashMap<String, usize, FixedState> = HashMap::default();
        for (i, e) in parsed.member.iter().enumerate() {
            let name = e.name.get_ref();
            if let Some(problem) = bad_name(name) {
                return Err(err(
                    e.name.span(),
                    format!("member name `{name}`: {problem}"),
                ));
            }
            if let Some(l) = name_line.insert(name.clone(), line_of(e.name.span())) {
                return Err(err(
                    e.name.span(),
                    format!("member `{name}` is named again (first on line {l})"),
                ));
            }
            let id = MEMBER_FIRST + i as u16;
            for mac in &e.macs {
                let v = parse_mac(mac.get_ref()).ok_or_else(|| {
                    err(
                        mac.span(),
                        format!(
                            "`{}` is not a MAC address (six hex bytes, e.g. 02:00:00:00:00:01)",
                            mac.get_ref()
                        ),
                    )
                })?;
                if let Some(prev) = m.macs.insert(v, id) {
                    return Err(err(
                        mac.span(),
                        format!(
                            "MAC address {} is already mapped to {}",
                            mac.get_ref(),
                            m.who(prev, id)
                        ),
                    ));
                }
                if m.macs.len() > MAX_MAPPINGS {
                    return Err(err(
                        mac.span(),
                        format!("more than {MAX_MAPPINGS} MAC addresses (the limit)"),
                    ));
                }
            }
            for p in &e.ports {
                let p_ref = p.get_ref();
                let agent: std::net::IpAddr = p_ref.agent.get_ref().parse().map_err(|_| {
                    err(
                        p_ref.agent.span(),
                        format!("agent `{}` is not an IP address", p_ref.agent.get_ref()),
                    )
                })?;
                let addr = match agent {
                    std::net::IpAddr::V4(a) => v4_addr(a.octets()),
                    std::net::IpAddr::V6(a) => u128::from_be_bytes(a.octets()),
                };
                let if_index = *p_ref.if_index.get_ref();
                if if_index >= 1 << 30 {
                    return Err(err(
                        p_ref.if_index.span(),
                        format!("if_index {if_index} is not an ifIndex (below 2^30)"),
                    ));
                }
                let sub = p_ref.sub_agent.map(u64::from).unwrap_or(ANY_SUB_AGENT);
                if let Some(prev) = m.ports.insert((addr, sub, if_index), id) {
                    let who = m.who(prev, id);
                    return Err(err(
                        p.span(),
                        format!(
                            "port (agent {}, if_index {if_index}) is already mapped to {who}",
                            p_ref.agent.get_ref()
                        ),
                    ));
                }
                if m.ports.len() > MAX_MAPPINGS {
                    return Err(err(
                        p.span(),
                        format!("more than {MAX_MAPPINGS} ports (the limit)"),
                    ));
                }
            }
            if e.macs.is_empty() && e.ports.is_empty() {
                return Err(err(
                    e.name.span(),
                    format!("member `{name}` has neither `macs` nor `ports`"),
                ));
            }
            m.names.push(name.clone());
        }
        Ok(m)
    }

    /// Who an earlier mapping went to, for an error while member `id` is read.
    fn who(&self, prev: u16, id: u16) -> String {
        match self.names.get(usize::from(prev.wrapping_sub(MEMBER_FIRST))) {
            Some(n) if prev != id => format!("member `{n}`"),
            _ => "this member".to_string(),
        }
    }

    /// Member names, by member index − [`MEMBER_FIRST`].
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The member index of a sample taken on agent `addr`/`sub_agent` entering at ifIndex
    /// `input`, of a frame whose source MAC address is `src_mac` (Ethernet headers): its
    /// port's member if the port is mapped, else its source MAC's, else
    /// [`MEMBER_UNKNOWN`].
    #[inline]
    pub fn lookup(&self, addr: Addr, sub_agent: u32, input: u32, src_mac: Option<u64>) -> u16 {
        if !self.ports.is_empty() {
            if let Some(&id) = self
                .ports
                .get(&(addr, u64::from(sub_agent), input))
                .or_else(|| self.ports.get(&(addr, ANY_SUB_AGENT, input)))
            {
                return id;
            }
        }
        src_mac
            .and_then(|mac| self.macs.get(&mac).copied())
            .unwrap_or(MEMBER_UNKNOWN)
    }
}

/// The six bytes of a MAC address as a number.
#[inline]
pub fn mac_value(b: &[u8]) -> Option<u64> {
    let b: [u8; 6] = b.get(..6)?.try_into().ok()?;
    Some(b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
}

/// `02:00:00:00:00:01` (or with `-`): six two-digit hex bytes.
fn parse_mac(s: &str) -> Option<u64> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut v = 0u64;
    let mut n = 0;
    for part in s.split(sep) {
        if part.len() != 2 {
            return None;
        }
        v = v << 8 | u64::from(u8::from_str_radix(part, 16).ok()?);
        n += 1;
    }
    (n == 6).then_some(v)
}

/// Why a name cannot be a tag value (CSV column, line-protocol tag, database label), if so.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > MAX_NAME {
        return Some("longer than 64 characters");
    }
    if name == UNKNOWN {
        return Some("reserved for samples of no member");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("only ASCII letters, digits, `-`, `_` and `.` are allowed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[member]]
name = "as64500-example"
macs = ["02:00:00:00:00:01", "02-00-00-00-00-0A"]
ports = [{ agent = "192.0.2.1", if_index = 5 }]

[[member]]
name = "as64501.b"
ports = [
    { agent = "192.0.2.1", if_index = 6 },
    { agent = "2001:db8::1", sub_agent = 2, if_index = 5 },
]
"#;

    fn parse_err(text: &str) -> MembersError {
        match Members::parse("m.toml", text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn ports_come_before_macs() {
        let m = Members::parse("m.toml", GOOD).expect("valid");
        assert_eq!(m.names(), ["as64500-example", "as64501.b"]);
        let a = v4_addr([192, 0, 2, 1]);
        let six = u128::from_be_bytes(
            "2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .octets(),
        );
        let mac1 = parse_mac("02:00:00:00:00:01");
        let mac10 = parse_mac("02:00:00:00:00:0a");
        let (first, second) = (MEMBER_FIRST, MEMBER_FIRST + 1);
        // Port 5 of 192.0.2.1, any sub-agent.
        assert_eq!(m.lookup(a, 0, 5, None), first);
        assert_eq!(m.lookup(a, 9, 5, None), first);
        // The port wins over the MAC.
        assert_eq!(m.lookup(a, 0, 6, mac1), second);
        // Unmapped port: the source MAC decides.
        assert_eq!(m.lookup(a, 0, 7, mac10), first);
        assert_eq!(m.lookup(a, 0, 7, Some(0x0200_0000_0002)), MEMBER_UNKNOWN);
        assert_eq!(m.lookup(a, 0, 7, None), MEMBER_UNKNOWN);
        // A sub-agent given in the file must match.
        assert_eq!(m.lookup(six, 2, 5, None), second);
        assert_eq!(m.lookup(six, 1, 5, None), MEMBER_UNKNOWN);
        assert_eq!(mac_value(&[2, 0, 0, 0, 0, 1, 99]), mac1);
        assert!(Members::parse("m.toml", "")
            .expect("empty")
            .names()
            .is_empty());
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("[[member]]\nname = \"a\"\nmacs = [\"02:00:00:00:00\"]\n", 3, "not a MAC"),
            ("[[member]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:0g\"]\n", 3, "not a MAC"),
            ("[[member]]\nname = \"a\"\nmac = [\"02:00:00:00:00:01\"]\n", 3, "unknown field"),
            ("[[member]]\nname = \"\"\nmacs = [\"02:00:00:00:00:01\"]\n", 2, "empty"),
            ("[[member]]\nname = \"a b\"\nmacs = [\"02:00:00:00:00:01\"]\n", 2, "only ASCII"),
            ("[[member]]\nname = \"a,b\"\nmacs = [\"02:00:00:00:00:01\"]\n", 2, "only ASCII"),
            ("[[member]]\nname = \"unknown\"\nmacs = [\"02:00:00:00:00:01\"]\n", 2, "reserved"),
            ("[[member]]\nname = \"a\"\n", 2, "neither"),
            (
                "[[member]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:01\"]\n[[member]]\nname = \"b\"\nmacs = [\"02:00:00:00:00:01\"]\n",
                6,
                "already mapped to member `a`",
            ),
            (
                "[[member]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:01\"]\n[[member]]\nname = \"a\"\nmacs = [\"02:00:00:00:00:02\"]\n",
                5,
                "named again (first on line 2)",
            ),
            (
                "[[member]]\nname = \"a\"\nports = [\n { agent = \"192.0.2.1\", if_index = 1 },\n { agent = \"192.0.2.1\", if_index = 1 },\n]\n",
                5,
                "already mapped to this member",
            ),
            (
                "[[member]]\nname = \"a\"\nports = [{ agent = \"192.0.2.300\", if_index = 1 }]\n",
                3,
                "not an IP address",
            ),
            (
                "[[member]]\nname = \"a\"\nports = [{ agent = \"192.0.2.1\", ifindex = 1 }]\n",
                3,
                "unknown field",
            ),
            ("[[members]]\nname = \"a\"\n", 1, "unknown field"),
            ("[[member]]\nname = \"a\"\nmacs = \"x\n", 3, ""),
        ];
        for (text, line, what) in cases {
            let e = parse_err(text);
            assert_eq!(e.line, *line, "{text}: {e}");
            assert_eq!(e.file, "m.toml");
            assert!(e.to_string().contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn the_member_limit_is_enforced() {
        let mut text = String::new();
        for i in 0..=MAX_MEMBERS {
            text.push_str(&format!(
                "[[member]]\nname = \"m{i}\"\nports = [{{ agent = \"192.0.2.1\", if_index = {i} }}]\n"
            ));
        }
        let e = parse_err(&text);
        assert!(e.to_string().contains("more than 8190 members"), "{e}");
        assert_eq!(e.line, 3 * MAX_MEMBERS + 2);
    }
}
