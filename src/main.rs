//! pushgate: one binary for a Git server's hooks. This file only dispatches (hook name or
//! subcommand) and owns the exit codes: 0 success, 1 push rejected, 2 usage or configuration
//! error.

#![recursion_limit = "256"]

mod admin;
mod audit;
mod chain;
mod cli;
mod config;
mod crashpoint;
mod demo;
mod event;
mod extension;
mod git;
mod hg;
mod hook;
mod identity;
mod install;
mod policy;
mod push;
mod queue;
mod record;
mod shell;
mod spool;
mod time;
mod whole_push;

use clap::Parser;
use std::ffi::OsString;
use std::process::ExitCode;

/// How a command ended, when it ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The push (or ref) is rejected: exit 1.
    Rejected,
}

/// A usage or configuration error: exit 2. Hooks never return one: they fail closed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl From<config::ConfigErrors> for Error {
    fn from(e: config::ConfigErrors) -> Error {
        Error(e.to_string())
    }
}

fn main() -> ExitCode {
    hook::install_panic_message();
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pushgate: {e}");
            ExitCode::from(2)
        }
    }
}

/// Invoked as `pre-receive`, `update` or `post-receive` (a symlink or copy), behave as that hook.
fn parse(mut args: Vec<OsString>) -> Result<cli::Cli, clap::Error> {
    let invoked_as = args.first().and_then(|a| std::path::Path::new(a).file_name()).map(|n| n.to_os_string());
    if let Some(name) = invoked_as.filter(|n| ["pre-receive", "update", "post-receive"].iter().any(|h| n == *h)) {
        args[0] = "pushgate".into();
        args.insert(1, name);
    }
    cli::Cli::try_parse_from(args)
}

fn run(cli: cli::Cli) -> Result<Outcome, Error> {
    use cli::Command as C;
    let config_path = cli.config.clone().unwrap_or_else(|| config::global_path(std::env::var_os("PUSHGATE_CONFIG")));
    let chain_dir = cli.chain_dir.clone();
    match cli.command {
        C::PreReceive { per_ref } => Ok(hook::pre_receive(&config_path, chain_dir.as_deref(), per_ref)),
        C::Update { name, old, new } => Ok(hook::update(&config_path, chain_dir.as_deref(), &name, &old, &new)),
        C::PostReceive => Ok(hook::post_receive(&config_path, chain_dir.as_deref())),
        C::Hg { hook } if hook == "pretxnclose" => Ok(hg::hook::pretxnclose(&config_path)),
        C::Hg { hook } if hook == "outgoing" => Ok(hg::hook::outgoing(&config_path)),
        C::Hg { hook } if hook == "prepushkey" => Ok(hg::hook::prepushkey(&config_path)),
        C::Hg { hook } if hook == "txnclose" => Ok(hg::hook::txnclose(&config_path)),
        C::Hg { hook } => Err(Error::new(format!("unknown Mercurial hook {hook:?}"))),
        C::Check { repo, json } => admin::check(&config_path, repo.as_deref(), json),
        C::Explain { user, ref_name, op, repo, path, json } => {
            admin::explain(&config_path, &admin::Question { user, ref_name, op, repo, path }, json)
        }
        C::Simulate { repo, user, json } => admin::simulate(&config_path, &repo, user, json),
        C::Install { per_ref, hg: true, repos } if !per_ref => install::install_hg(&repos),
        C::Install { per_ref, repos, .. } => install::install(&repos, per_ref),
        C::Uninstall { repos } => install::uninstall(&repos),
        C::Deliver { watch, .. } => queue::deliver(&config_path, watch),
        C::Queue { command } => queue::run(&config_path, command),
        C::Log { connector, json } => queue::log(&config_path, connector.as_deref(), json),
        C::Shell { user } => {
            shell::run(&config_path, cli.config.is_some(), &user, std::env::var("SSH_ORIGINAL_COMMAND").ok())
        }
        C::Keys { dir } => shell::keys(&dir, cli.config.as_deref()),
        C::Demo => demo::run(),
    }
}
