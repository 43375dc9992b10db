//! Script extensions: argv without a shell, the body on stdin (a file, so a killed pushgate
//! never leaves a script reading an empty or partial event), a clean environment, the
//! repository as working directory (`/` once it is gone). A script past its timeout is
//! killed with its whole process group, so its children (a `sleep`, a `curl`) do not keep
//! pipes open.

use super::{Call, Reply};
use crate::config::extension::Phase;
use crate::env::Env;
use crate::text;
use std::ffi::OsStr;
use std::io::{Read, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Output kept per stream; the rest is read and dropped so the script never blocks on a
/// full pipe.
const MAX_OUTPUT: usize = 64 * 1024;
/// Exit status meaning "try again later" (sysexits.h).
const EX_TEMPFAIL: i32 = 75;

/// Run a script: `passed` names the variables of `env` it is given besides the usual ones.
pub fn run(command: &[String], passed: &[String], timeout: Duration, call: &Call, env: &Env) -> Reply {
    let (program, args) = command.split_first().expect("config validation requires a program");
    let stdin = match body_file(call.body) {
        Ok(file) => file,
        Err(e) => return Reply::failed(format!("cannot write the event for the script: {e}")),
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(environment(env, passed, call.phase))
        .env("PUSHGATE_PHASE", call.phase.as_str())
        .env("PUSHGATE_USER", call.user)
        .env("PUSHGATE_REPO", call.repo)
        .env("PUSHGATE_EVENT_ID", call.event_id)
        .env("PUSHGATE_DELIVERY_ID", call.delivery_id)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A repository deleted since the push it was told of is gone: the script runs in `/`,
    // also when the deletion comes between looking and starting the script.
    let root = std::path::Path::new("/");
    let mut spawned = command.current_dir(if call.cwd.is_dir() { call.cwd } else { root }).spawn();
    if spawned.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) && !call.cwd.is_dir() {
        spawned = command.current_dir(root).spawn();
    }
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return Reply::failed(format!("cannot run {program}: {e}")),
    };
    let pid = child.id() as i32;
    let (output_tx, output_rx) = mpsc::channel();
    for (index, stream) in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = output_tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((index, stream.map(read_capped).unwrap_or_default()));
        });
    }
    drop(output_tx);
    let (status_tx, status_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = match status_rx.recv_timeout(timeout) {
        Ok(status) => status,
        Err(_) => {
            kill_group(pid);
            let _ = status_rx.recv();
            return Reply::failed(format!("timed out after {}", seconds(timeout)));
        }
    };
    // The script is gone; its group may linger with our pipes: end it, then collect output.
    kill_group(pid);
    let mut outputs = [Vec::new(), Vec::new()];
    while let Ok((index, bytes)) = output_rx.recv_timeout(Duration::from_secs(2)) {
        outputs[index] = bytes;
    }
    classify(status, &outputs)
}

/// The event in an unnamed temporary file, from its start: whole before the script starts.
fn body_file(body: &[u8]) -> std::io::Result<std::fs::File> {
    let mut file = tempfile::tempfile()?;
    file.write_all(body)?;
    file.rewind()?;
    Ok(file)
}

/// A script's environment besides its `PUSHGATE_*` variables: the machine's basics, the
/// quarantine in `pre` (so it can read the pushed objects), and what its `env` names. No
/// other variable, so no other extension's secret, reaches it.
fn environment<'e>(env: &'e Env, passed: &'e [String], phase: Phase) -> impl Iterator<Item = (&'e OsStr, &'e OsStr)> {
    const BASICS: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];
    const QUARANTINE: [&str; 4] =
        ["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "HG_PENDING"];
    env.vars().filter(move |(name, _)| {
        let name = name.to_str().unwrap_or_default();
        BASICS.contains(&name)
            || name.starts_with("LC_")
            || (phase == Phase::Pre && QUARANTINE.contains(&name))
            || passed.iter().any(|p| p == name)
    })
}

fn classify(status: std::io::Result<std::process::ExitStatus>, outputs: &[Vec<u8>; 2]) -> Reply {
    let status = match status {
        Ok(status) => status,
        Err(e) => return Reply::failed(format!("cannot wait for the script: {e}")),
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Reply::Accepted { status: "exit 0".into() },
        (Some(EX_TEMPFAIL), _) => Reply::Failed {
            reason: "temporary failure (exit 75)".into(),
            status: Some("exit 75".into()),
            retry_after: None,
        },
        (Some(code), _) => {
            let mut lines = text::lines(&outputs[0]);
            lines.extend(text::lines(&outputs[1]));
            lines.truncate(text::MAX_LINES + 1);
            Reply::Refused { code: format!("exit {code}"), lines }
        }
        (None, signal) => {
            let signal = signal.map_or_else(|| "?".into(), |s| s.to_string());
            Reply::Failed {
                reason: format!("crashed (signal {signal})"),
                status: Some(format!("signal {signal}")),
                retry_after: None,
            }
        }
    }
}

fn read_capped(mut stream: Box<dyn Read + Send>) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill has no memory effects; a group that is already gone gives ESRCH.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn call(body: &[u8]) -> Call<'_> {
        Call {
            body,
            event: crate::event::EventKind::Push,
            phase: Phase::Pre,
            user: "alice",
            repo: "app",
            event_id: "e1",
            delivery_id: "d1",
            cwd: Path::new("/"),
            dialect: crate::extension::body::Dialect::Pushgate,
            instance: "https://git.example.org",
        }
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    fn script(command: &[String], timeout: Duration, call: &Call) -> Reply {
        let env = Env::from_vars([("PATH", std::env::var_os("PATH").unwrap_or_default())]);
        run(command, &[], timeout, call, &env)
    }

    #[test]
    fn a_script_sees_only_its_own_variables() {
        let env = Env::from_vars([
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("OTHER_SECRET", "s3cret".into()),
            ("MINE", "mine".into()),
            ("GIT_OBJECT_DIRECTORY", "/q".into()),
            ("PUSHGATE_CHAINED_BY", "1".into()),
        ]);
        let listing = sh("env | sort | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' >&2; exit 3");
        let Reply::Refused { lines, .. } = run(&listing, &["MINE".into()], Duration::from_secs(10), &call(b""), &env)
        else {
            panic!("the listing script refuses")
        };
        let names: Vec<&str> = lines.iter().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
        assert_eq!(
            names,
            [
                "GIT_OBJECT_DIRECTORY",
                "MINE",
                "PATH",
                "PUSHGATE_DELIVERY_ID",
                "PUSHGATE_EVENT_ID",
                "PUSHGATE_PHASE",
                "PUSHGATE_REPO",
                "PUSHGATE_USER"
            ]
        );
    }

    #[test]
    fn exit_codes_classify() {
        let t = Duration::from_secs(10);
        assert_eq!(script(&sh("cat >/dev/null"), t, &call(b"{}")), Reply::Accepted { status: "exit 0".into() });
        assert!(matches!(script(&sh("exit 75"), t, &call(b"")), Reply::Failed { .. }));
        assert!(
            matches!(script(&sh("kill -9 $$"), t, &call(b"")), Reply::Failed { reason, .. } if reason.contains("signal 9"))
        );
        let refused = script(&sh("echo \"user $PUSHGATE_USER\"; echo oops >&2; exit 3"), t, &call(b""));
        assert_eq!(refused, Reply::Refused { code: "exit 3".into(), lines: vec!["user alice".into(), "oops".into()] });
    }

    #[test]
    fn stdin_carries_the_body() {
        let reply = script(&sh("test \"$(cat)\" = '{\"a\":1}'"), Duration::from_secs(10), &call(br#"{"a":1}"#));
        assert!(reply.accepted(), "{reply:?}");
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let started = std::time::Instant::now();
        let reply = script(&sh("sleep 30 & sleep 30; echo done"), Duration::from_millis(300), &call(b""));
        assert_eq!(reply, Reply::failed("timed out after 300ms"));
        assert!(started.elapsed() < Duration::from_secs(10), "the group's pipes were released");
    }

    #[test]
    fn chatty_scripts_do_not_block() {
        let reply = script(&sh("head -c 5000000 /dev/zero | tr '\\0' x; exit 1"), Duration::from_secs(20), &call(b""));
        assert!(matches!(reply, Reply::Refused { .. }));
    }

    #[test]
    fn a_missing_program_is_a_failure() {
        let reply = script(&["/nonexistent/hook".to_string()], Duration::from_secs(1), &call(b""));
        assert!(matches!(reply, Reply::Failed { reason, .. } if reason.starts_with("cannot run /nonexistent/hook")));
    }
}
