//! The rules loader: ports.toml and signatures.toml texts (split at the first NUL byte).
#![no_main]
use bittap::classify::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (ports, sigs) = text.split_once('\0').unwrap_or((text, ""));
    if let Ok(r) = Rules::from_texts(("ports.toml", ports), ("signatures.toml", sigs)) {
        let _ = r.port_rule_for(bittap::classify::rules::Transport::Tcp, 6881, 80);
    } else if let Err(e) = Rules::from_texts(("ports.toml", ports), ("signatures.toml", sigs)) {
        let _ = e.to_string();
    }
});
