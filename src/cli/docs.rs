//! `bittap rules check`, and the man page and completions generated from the clap
//! definitions.

use std::path::PathBuf;

use clap::CommandFactory;

use super::exit::Error;
use super::settings::load_rules;
use crate::Cli;

/// Validates a rule directory (or the built-in rules) and lists it.
pub fn rules_check(dir: Option<PathBuf>) -> Result<(), Error> {
    let r = load_rules(dir.as_deref()).map_err(|e| Error::Usage(format!("invalid rules: {e}")))?;
    println!(
        "{} port rules, {} signatures: valid",
        r.ports.len(),
        r.signatures.len()
    );
    for p in &r.ports {
        let ranges: Vec<String> = p
            .ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        println!(
            "  port  {:<28} {} {:<12} {}",
            p.id,
            p.transport.name(),
            p.proto.name(),
            ranges.join(",")
        );
    }
    for s in &r.signatures {
        println!(
            "  sig   {:<28} {} {:<12} offset {} ({} bytes)",
            s.id,
            s.transport.name(),
            if s.class == bittap::classify::Class::Other {
                "other"
            } else {
                s.proto.name()
            },
            s.offset,
            s.bytes.len()
        );
    }
    Ok(())
}

/// A shell completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    clap_complete::generate(shell, &mut Cli::command(), "bittap", &mut std::io::stdout());
    Ok(())
}

/// The man page: bittap(1) with every visible subcommand's options in it.
pub fn manpage() -> Result<(), Error> {
    let out = render_manpage().map_err(|e| Error::Failure(e.to_string()))?;
    std::io::Write::write_all(&mut std::io::stdout(), &out)
        .map_err(|e| Error::Failure(e.to_string()))
}

fn render_manpage() -> std::io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        let man = clap_mangen::Man::new(sub.clone().bin_name(format!("bittap {name}")));
        out.extend_from_slice(format!(".SH \"BITTAP {}\"\n", name.to_uppercase()).as_bytes());
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        if sub.has_subcommands() {
            man.render_subcommands_section(&mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag of the counting subcommands is in the man page, under its section.
    #[test]
    fn man_page_has_every_flag() {
        let man = String::from_utf8(render_manpage().expect("render")).expect("utf-8");
        for name in ["analyze", "live", "sflow"] {
            assert!(man.contains(&format!(".SH \"BITTAP {}\"", name.to_uppercase())));
            let cmd = Cli::command();
            let sub = cmd.find_subcommand(name).expect("subcommand");
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(
                        man.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "{name} --{long}"
                    );
                }
            }
        }
    }
}
