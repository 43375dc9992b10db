//! Hooks that were installed before pushgate: moved to `hooks/<name>.d/` by `install`, and
//! run after pushgate's own verdict with the same input. Their non-zero exit still rejects.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether this process is pushgate run as a chained hook by pushgate itself (the old hook
/// was a link to pushgate): it must do nothing, or each would run the next forever. Only a
/// direct child counts, so nothing a chained hook starts (a push to a mirror) is exempt,
/// and the test is the parent process's binary, which no client can set (an environment
/// variable could be forged through sshd's `AcceptEnv`).
pub fn run_by_ourselves(env: &crate::env::Env) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let Ok(ours) = env.exe().and_then(|exe| std::fs::metadata(exe).map_err(|e| e.to_string())) else {
        return false;
    };
    std::fs::metadata(format!("/proc/{parent}/exe"))
        .is_ok_and(|theirs| (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()))
}

/// The executables in `<hooks_dir>/<name>.d/`, sorted by name.
pub fn chained_hooks(hooks_dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(hooks_dir.join(format!("{name}.d"))) else {
        return Vec::new();
    };
    let mut hooks: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .collect();
    hooks.sort();
    hooks
}

/// Run each chained hook in order with `args` and `stdin`; the first failure is returned as
/// a one-line reason.
pub fn run(hooks: &[PathBuf], args: &[&str], stdin: &[u8]) -> Result<(), String> {
    for hook in hooks {
        let shown = hook.display();
        let mut child = Command::new(hook)
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run chained hook {shown}: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            // A hook that does not read its input closes the pipe early: not an error.
            let _ = input.write_all(stdin);
        }
        let status = child.wait().map_err(|e| format!("chained hook {shown}: {e}"))?;
        if !status.success() {
            let code = status.code().map_or_else(|| "a signal".to_string(), |c| format!("exit {c}"));
            return Err(format!("chained hook {shown} refused ({code})"));
        }
    }
    Ok(())
}
