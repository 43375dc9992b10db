//! `pushgate install` / `uninstall`: write pushgate's hooks into repositories, keeping the
//! hooks that were there (moved to `hooks/<name>.d/`, run after pushgate's decision), and
//! put them back on uninstall. Both are idempotent.

use super::check::git_dir_of;
use crate::outcome::{Error, Outcome};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line that marks a hook script as pushgate's own (hooks installed before they became
/// symlinks to the binary).
const MARKER: &str = "# pushgate-hook:";
const HOOKS: [&str; 3] = ["pre-receive", "update", "post-receive"];

/// The binary's own path, as hooks name it.
pub fn own_path(exe: &Path) -> Result<PathBuf, Error> {
    exe.canonicalize().map_err(|e| Error::new(format!("cannot find pushgate's own path: {e}")))
}

/// `pushgate install [--per-ref] <repo>...`: the Git hooks, running `binary`.
pub fn install(repos: &[PathBuf], per_ref: bool, binary: &Path, out: &mut dyn Write) -> Result<Outcome, Error> {
    // Per ref, pre-receive only records the whole push for the update hook's decisions.
    let wanted: &[&str] = if per_ref { &HOOKS } else { &["pre-receive", "post-receive"] };
    for repo in repos {
        let git_dir = repository(repo)?;
        let hooks_dir = hooks_dir(&git_dir)?;
        std::fs::create_dir_all(&hooks_dir).map_err(|e| io_error(&hooks_dir, e))?;
        for name in HOOKS {
            if wanted.contains(&name) {
                install_hook(&hooks_dir, name, binary, out)?;
            } else {
                let _ = remove_hook(&hooks_dir, name, binary)?;
            }
        }
        enable_push_options(&git_dir)?;
        let mode = if per_ref { "per ref (update hook)" } else { "whole push (pre-receive)" };
        writeln!(out, "pushgate: installed in {} ({mode})", git_dir.display())?;
    }
    Ok(Outcome::Success)
}

/// The block `install --hg` adds to `.hg/hgrc`, between these marker lines.
const HG_BEGIN: &str = "# pushgate-hook: begin (added by `pushgate install --hg`; `pushgate uninstall` removes it)";
const HG_END: &str = "# pushgate-hook: end";

/// The `[hooks]` entries for Mercurial, for `binary`.
/// pushgate's hooks for hg that run inside hg (`python:` hooks): they gather the push with
/// Mercurial's API and hand it to `pushgate hg ...`.
pub const HG_SHIM: &str = include_str!("../../hooks-templates/pushgate_hg.py");
/// Where `install --hg` puts the shim in a repository.
const HG_SHIM_FILE: &str = "pushgate_hg.py";

/// The hgrc entries for Mercurial: `binary` is pushgate, `shim` the hg shim's path.
pub fn hg_hooks(binary: &Path, shim: &Path) -> String {
    let exe = shell_quote(&binary.to_string_lossy());
    let shim = shim.to_string_lossy();
    format!(
        "[pushgate]\nbinary = {}\n[hooks]\npretxnclose.pushgate = python:{shim}:pretxnclose\n\
         txnclose.pushgate = python:{shim}:txnclose\noutgoing.pushgate = {exe} hg outgoing\n\
         prepushkey.pushgate = python:{shim}:prepushkey\n",
        binary.to_string_lossy()
    )
}

/// `pushgate install --hg <repo>...`: the shim in `.hg/` and pushgate's block in `.hg/hgrc`.
pub fn install_hg(repos: &[PathBuf], binary: &Path, out: &mut dyn Write) -> Result<Outcome, Error> {
    for repo in repos {
        let dot_hg = hg_repository(repo)?;
        let shim = dot_hg.join(HG_SHIM_FILE);
        std::fs::write(&shim, HG_SHIM).map_err(|e| io_error(&shim, e))?;
        let hgrc = dot_hg.join("hgrc");
        let kept = without_our_block(&std::fs::read_to_string(&hgrc).unwrap_or_default());
        let separator = if kept.is_empty() || kept.ends_with('\n') { "" } else { "\n" };
        let text = format!("{kept}{separator}{HG_BEGIN}\n{}{HG_END}\n", hg_hooks(binary, &shim));
        std::fs::write(&hgrc, text).map_err(|e| io_error(&hgrc, e))?;
        writeln!(out, "pushgate: installed in {}", hgrc.display())?;
    }
    Ok(Outcome::Success)
}

pub(super) fn hg_repository(repo: &Path) -> Result<PathBuf, Error> {
    let dot_hg = repo.join(".hg");
    if !dot_hg.join("requires").is_file() && !dot_hg.join("store").is_dir() {
        return Err(Error::new(format!("{} is not a Mercurial repository", repo.display())));
    }
    dot_hg.canonicalize().map_err(|e| io_error(&dot_hg, e))
}

/// An hgrc without pushgate's block; everything else exactly as it was.
fn without_our_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == HG_BEGIN {
            inside = true;
        } else if inside && trimmed == HG_END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// `pushgate uninstall <repo>...`: remove pushgate's hooks, put back the ones it kept.
pub fn uninstall(repos: &[PathBuf], binary: &Path, out: &mut dyn Write) -> Result<Outcome, Error> {
    for repo in repos {
        if let Ok(dot_hg) = hg_repository(repo) {
            let hgrc = dot_hg.join("hgrc");
            let text = std::fs::read_to_string(&hgrc).unwrap_or_default();
            let kept = without_our_block(&text);
            let shim = std::fs::remove_file(dot_hg.join(HG_SHIM_FILE)).is_ok();
            if kept == text && !shim {
                writeln!(out, "pushgate: nothing to uninstall in {}", hgrc.display())?;
                continue;
            }
            std::fs::write(&hgrc, kept).map_err(|e| io_error(&hgrc, e))?;
            writeln!(out, "pushgate: uninstalled from {}", hgrc.display())?;
            continue;
        }
        let git_dir = repository(repo)?;
        let hooks_dir = hooks_dir(&git_dir)?;
        let mut removed = false;
        for name in HOOKS {
            removed |= remove_hook(&hooks_dir, name, binary)?;
        }
        removed |= restore_push_options(&git_dir)?;
        match removed {
            true => writeln!(out, "pushgate: uninstalled from {}", git_dir.display())?,
            false => writeln!(out, "pushgate: nothing to uninstall in {}", git_dir.display())?,
        }
    }
    Ok(Outcome::Success)
}

pub(super) fn repository(repo: &Path) -> Result<PathBuf, Error> {
    let git_dir = git_dir_of(repo);
    if !(git_dir.join("HEAD").is_file() && git_dir.join("objects").is_dir()) {
        return Err(Error::new(format!("{} is not a Git repository", repo.display())));
    }
    git_dir.canonicalize().map_err(|e| io_error(&git_dir, e))
}

/// pushgate's own hook: a script with the marker, or the pushgate binary itself (a symlink
/// or a copy), which must be replaced, never chained (it would run itself forever).
pub(super) fn is_ours(path: &Path, exe: &Path) -> bool {
    let marked = std::fs::read(path)
        .is_ok_and(|bytes| bytes.split(|&b| b == b'\n').any(|line| line.starts_with(MARKER.as_bytes())));
    marked || is_pushgate(path, exe)
}

fn is_pushgate(path: &Path, exe: &Path) -> bool {
    let Ok(target) = path.canonicalize() else { return false };
    if target == exe {
        return true;
    }
    let same_size = matches!((target.metadata(), exe.metadata()), (Ok(a), Ok(b)) if a.len() == b.len());
    same_size && matches!((std::fs::read(&target), std::fs::read(exe)), (Ok(a), Ok(b)) if a == b)
}

/// Where git looks for this repository's hooks: `core.hooksPath` when set (relative to the
/// work tree, or to the git dir of a bare repository), else `hooks/`.
pub(super) fn hooks_dir(git_dir: &Path) -> Result<PathBuf, Error> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["config", "--get", "core.hooksPath"])
        .output()
        .map_err(|e| Error::new(format!("cannot run git to read core.hooksPath: {e}")))?;
    let configured = String::from_utf8_lossy(&output.stdout).trim_end_matches('\n').to_string();
    if !output.status.success() || configured.is_empty() {
        return Ok(git_dir.join("hooks"));
    }
    let configured = PathBuf::from(configured);
    if configured.is_absolute() {
        return Ok(configured);
    }
    let base =
        if git_dir.file_name().is_some_and(|n| n == ".git") { git_dir.parent().unwrap_or(git_dir) } else { git_dir };
    Ok(base.join(configured))
}

fn install_hook(hooks_dir: &Path, name: &str, binary: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let path = hooks_dir.join(name);
    if path.symlink_metadata().is_ok() && !is_ours(&path, binary) {
        let chained_dir = hooks_dir.join(format!("{name}.d"));
        std::fs::create_dir_all(&chained_dir).map_err(|e| io_error(&chained_dir, e))?;
        let kept = free_name(&chained_dir, name);
        std::fs::rename(&path, &kept).map_err(|e| io_error(&path, e))?;
        writeln!(out, "pushgate: kept the existing {name} hook as {} (it still runs)", kept.display())?;
    }
    // The hook is the binary itself (a symlink): git runs it directly, no `sh` in between;
    // its name says which hook it is, its directory where chained hooks are (main.rs).
    let staged = hooks_dir.join(format!(".{name}.pushgate-new"));
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(binary, &staged).map_err(|e| io_error(&staged, e))?;
    std::fs::rename(&staged, &path).map_err(|e| io_error(&path, e))
}

/// Remove pushgate's hook `name` and put back the one it replaced, if any; whether there
/// was one of ours.
fn remove_hook(hooks_dir: &Path, name: &str, binary: &Path) -> Result<bool, Error> {
    let path = hooks_dir.join(name);
    if !is_ours(&path, binary) {
        return Ok(false);
    }
    std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
    let chained_dir = hooks_dir.join(format!("{name}.d"));
    let kept = chained_dir.join(name);
    if kept.symlink_metadata().is_ok() {
        std::fs::rename(&kept, &path).map_err(|e| io_error(&kept, e))?;
        // Only removed when empty: other chained hooks stay where the admin put them.
        let _ = std::fs::remove_dir(&chained_dir);
    }
    Ok(true)
}

/// `<dir>/<name>`, or `<dir>/<name>.N` when taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if first.symlink_metadata().is_err() {
        return first;
    }
    (1..).map(|n| dir.join(format!("{name}.{n}"))).find(|p| p.symlink_metadata().is_err()).expect("some name is free")
}

/// Push options reach the hooks only when the server advertises them.
/// Push options reach the hooks only when the server advertises them. Whether install set
/// it is noted (`pushgate.setAdvertisePushOptions`), so uninstall takes back only that.
fn enable_push_options(git_dir: &Path) -> Result<(), Error> {
    if git_config(git_dir, &["--get", "receive.advertisePushOptions"])?.is_some() {
        return Ok(());
    }
    git_config(git_dir, &["receive.advertisePushOptions", "true"])?;
    git_config(git_dir, &["pushgate.setAdvertisePushOptions", "true"])?;
    Ok(())
}

/// Undo [`enable_push_options`]; whether there was something to undo.
fn restore_push_options(git_dir: &Path) -> Result<bool, Error> {
    if git_config(git_dir, &["--get", "pushgate.setAdvertisePushOptions"])?.is_none() {
        return Ok(false);
    }
    git_config(git_dir, &["--unset", "receive.advertisePushOptions"])?;
    git_config(git_dir, &["--remove-section", "pushgate"])?;
    Ok(true)
}

/// `git config <args>` in the repository: its output, `None` when git says "not set".
fn git_config(git_dir: &Path, args: &[&str]) -> Result<Option<String>, Error> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .arg("config")
        .args(args)
        .output()
        .map_err(|e| Error::new(format!("cannot run git config in {}: {e}", git_dir.display())))?;
    match output.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&output.stdout).trim().to_string())),
        // 1: the key or section is not set.
        Some(1) | Some(5) => Ok(None),
        _ => Err(Error::new(format!(
            "git config {} failed in {}: {}",
            args.join(" "),
            git_dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hgrc_block_is_replaced_not_duplicated_and_removed_cleanly() {
        let original = "[paths]\ndefault = /x\n[hooks]\nchangegroup.mine = echo hi\n";
        let hooks = hg_hooks(Path::new("/bin/pushgate"), Path::new("/r/.hg/pushgate_hg.py"));
        let once = format!("{original}{HG_BEGIN}\n{hooks}{HG_END}\n");
        assert_eq!(without_our_block(&once), original);
        assert!(hooks.contains("pretxnclose.pushgate = python:/r/.hg/pushgate_hg.py:pretxnclose"), "{hooks}");
        assert!(hooks.contains("[pushgate]\nbinary = /bin/pushgate\n"), "{hooks}");
    }

    #[test]
    fn quoting_survives_hostile_paths() {
        assert_eq!(shell_quote("/opt/it's here/pushgate"), "'/opt/it'\\''s here/pushgate'");
    }
}
