//! Puts the git commit in `BITTAP_COMMIT` for `bittap --version` and the build_info metric;
//! "unknown" outside a git checkout (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BITTAP_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit, a checkout); in a worktree the git dir is its own.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let mut watch: Vec<std::path::PathBuf> = ["HEAD", "logs/HEAD"]
            .iter()
            .map(|f| std::path::Path::new(&dir).join(f))
            .collect();
        // The branch's ref itself (in the common git dir for a worktree), should logs be off.
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(p) = git(&["rev-parse", "--git-path", &r]) {
                watch.push(p.into());
            }
        }
        for p in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
