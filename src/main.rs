//! pushgate's entry point: read the environment once, dispatch on the hook name or the
//! subcommand, and turn how the command ended into an exit code, in one place: 0 success,
//! 1 push rejected, 2 usage, configuration or I/O error. A closed standard output ends a
//! command quietly with its normal exit code.

use clap::Parser;
use pushgate::cli::{Cli, Command};
use pushgate::command::{check, demo, doctor, explain, install, metrics, queue, shell, simulate};
use pushgate::env::Env;
use pushgate::hook::{self, Hook};
use pushgate::outcome::{Error, Outcome};
use pushgate::output::Quiet;
use pushgate::{config, crashpoint};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> ExitCode {
    install_panic_message();
    let env = Env::capture();
    crashpoint::arm(env.var("PUSHGATE_CRASH_AT"));
    let cli = match parse(std::env::args_os().collect(), &env) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let mut out = Quiet::new(std::io::stdout().lock());
    let mut err = std::io::stderr();
    let ended = run(cli, &env, &mut out, &mut err).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match ended {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(e) => {
            let _ = writeln!(err, "pushgate: {e}");
            ExitCode::from(2)
        }
    }
}

/// Invoked as `pre-receive`, `update` or `post-receive` (the symlinks `install` makes, or a
/// copy), behave as that hook: chained hooks are beside it, and a pre-receive beside
/// pushgate's own `update` hook only records the push (`install --per-ref`).
fn parse(mut args: Vec<OsString>, env: &Env) -> Result<Cli, clap::Error> {
    let hook = args
        .first()
        .map(Path::new)
        .filter(|a| a.file_name().is_some_and(|n| ["pre-receive", "update", "post-receive"].iter().any(|h| n == *h)));
    if let Some(hook) = hook.map(Path::to_path_buf) {
        let name = hook.file_name().map(OsString::from).unwrap_or_default();
        let dir = hook.parent().map(Path::to_path_buf).unwrap_or_default();
        let per_ref = name == "pre-receive" && is_pushgate(&dir.join("update"), env);
        let mut new = vec![OsString::from("pushgate"), "--chain-dir".into(), dir.into_os_string(), name];
        if per_ref {
            new.push("--per-ref".into());
        }
        new.extend(args.drain(1..));
        args = new;
    }
    Cli::try_parse_from(args)
}

/// Whether `path` is pushgate itself (a symlink to this binary).
fn is_pushgate(path: &Path, env: &Env) -> bool {
    let Ok(exe) = env.exe() else { return false };
    path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
        && matches!((path.canonicalize(), exe.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Run one command with the standard streams.
fn run(cli: Cli, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, Error> {
    let config_path = cli.config.clone().unwrap_or_else(|| config::global_path(env.var_os("PUSHGATE_CONFIG")));
    let config_path = config_path.as_path();
    let hook = Hook { config_path, chain_dir: cli.chain_dir.as_deref(), env };
    let binary = || install::own_path(env.exe().map_err(Error::new)?);
    match cli.command {
        Command::PreReceive { per_ref } => {
            Ok(hook::git::pre_receive(&hook, per_ref, &mut std::io::stdin().lock(), err))
        }
        Command::Update { name, old, new } => Ok(hook::git::update(&hook, &name, &old, &new, err)),
        Command::PostReceive => Ok(hook::git::post_receive(&hook, &mut std::io::stdin().lock(), err)),
        Command::Hg { hook: which } => Ok(hook::hg::run(&hook, which, &mut std::io::stdin().lock(), err)),
        Command::Check { repo, json } => check::run(config_path, repo.as_deref(), json, out, err),
        Command::Explain { user, ref_name, op, repo, path, json } => {
            explain::run(config_path, &explain::Question { user, ref_name, op, repo, path }, json, out)
        }
        Command::Simulate { repo, user, json } => {
            simulate::run(config_path, &repo, user, json, env, &mut std::io::stdin().lock(), out)
        }
        Command::Install { per_ref, hg: true, repos } if !per_ref => install::install_hg(&repos, &binary()?, out),
        Command::Install { per_ref, repos, .. } => install::install(&repos, per_ref, &binary()?, out),
        Command::Uninstall { repos } => install::uninstall(&repos, &binary()?, out),
        Command::Deliver { watch, after, .. } => {
            if watch {
                stop_on_term();
            }
            if let Some(pid) = after {
                wait_for_exit(pid, std::time::Duration::from_secs(5));
            }
            queue::deliver(config_path, watch, env, &|| STOP.load(Ordering::SeqCst))
        }
        Command::Queue { command } => queue::run(config_path, command, out),
        Command::Log { connector, json } => queue::log(config_path, connector.as_deref(), json, out),
        Command::Shell { user } => {
            let shell = shell::Shell { config_path, explicit_config: cli.config.is_some(), user: &user, env };
            shell::run(&shell, err)
        }
        Command::Keys { dir } => shell::keys(&dir, cli.config.as_deref(), env.exe().map_err(Error::new)?, out, err),
        Command::Demo => demo::run(env.exe().map_err(Error::new)?, out),
        Command::Metrics => metrics::run(config_path, out),
        Command::Doctor { repos } => doctor::run(config_path, &repos, env, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "pushgate", out);
            Ok(Outcome::Success)
        }
        Command::Manpage => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(out)?;
            Ok(Outcome::Success)
        }
    }
}

/// Set by SIGTERM or SIGINT: `deliver --watch` finishes its attempt and stops.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn stop_on_term() {
    // SAFETY: the handler only stores to an atomic; no SA_RESTART, so a sleeping poll wakes.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_term as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// Wait (at most `limit`) for process `pid` to exit, without polling: a pidfd becomes
/// readable when its process ends.
fn wait_for_exit(pid: u32, limit: std::time::Duration) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: plain syscalls on a descriptor this function owns.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
        if fd < 0 {
            return;
        }
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        libc::poll(&mut poll, 1, limit.as_millis().min(i32::MAX as u128) as i32);
        libc::close(fd);
    }
}

/// A panic is a bug; in a hook it still rejects (non-zero exit), with one readable line.
fn install_panic_message() {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(std::io::stderr(), "pushgate: internal error (a bug, please report it): {info}");
    }));
}
