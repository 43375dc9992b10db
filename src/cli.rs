//! The command line, as SPEC.md section 2 names it.

use crate::hook::hg::HgHook;
use crate::push::Op;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A connector name as pushgate makes them; anything else is refused before it can name a
/// path.
fn connector(name: &str) -> Result<String, String> {
    match crate::config::extension::valid_connector(name) {
        true => Ok(name.to_string()),
        false => Err("not a connector name: [A-Za-z0-9._-]{1,64}, optionally ~ and 8 hex digits".into()),
    }
}

/// A job id as `queue list` shows them: `<connector>.<number>.<change>`.
fn job(id: &str) -> Result<String, String> {
    match crate::spool::job::parse_id(id) {
        Some(_) => Ok(id.to_string()),
        None => Err("not a job id: <connector>.<number>.<change>, as `pushgate queue list` shows them".into()),
    }
}

#[derive(Debug, Parser)]
#[command(name = "pushgate", version, about = "Git server hooks: rules decide pushes, extensions are told", long_about = None)]
pub struct Cli {
    /// Configuration file (default: $PUSHGATE_CONFIG, else /etc/pushgate/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The hooks directory an installed hook runs from, to find chained hooks in <name>.d/.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    pub chain_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// One line per connector: pending, dead, disabled, next attempt, last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The jobs waiting (or dead), oldest first.
    List {
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        json: bool,
    },
    /// One job, with the body it delivers.
    Show {
        #[arg(value_parser = job)]
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// Put dead jobs back at the front of their connector's queue.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = job)]
        jobs: Vec<String>,
        #[arg(long)]
        all: bool,
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove jobs (waiting or dead).
    Drop {
        #[arg(required = true, value_parser = job)]
        jobs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Re-enable a connector disabled by a 410.
    Enable {
        #[arg(value_parser = connector)]
        connector: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Git pre-receive hook: decide the whole push (exit 0 accepts, 1 rejects every ref).
    PreReceive {
        /// Decide nothing: record the push for the update hook (`install --per-ref`).
        #[arg(long)]
        per_ref: bool,
    },
    /// Git update hook: decide one ref (non-zero rejects that ref only).
    Update {
        #[arg(value_name = "REF")]
        name: String,
        old: String,
        new: String,
    },
    /// Git post-receive hook: spool the push event for the `post` extensions, start a
    /// detached deliverer, return at once.
    PostReceive,
    /// Deliver spooled jobs to the `post` extensions.
    Deliver {
        /// Deliver what is due, then exit (what post-receive starts).
        #[arg(long, conflicts_with = "watch")]
        once: bool,
        /// Keep running: deliver new events at once and retries on schedule.
        #[arg(long)]
        watch: bool,
        /// Start once this process has exited (post-receive passes its receive-pack, so
        /// delivering never competes with the push it follows).
        #[arg(long, hide = true, value_name = "PID")]
        after: Option<u32>,
    },
    /// Inspect and repair the delivery queues.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Delivery attempts: time, connector, outcome, status, duration (oldest first).
    Log {
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Mercurial hooks, as `install --hg` writes them: `pretxnclose` decides, `txnclose` spools.
    Hg {
        #[arg(value_enum)]
        hook: HgHook,
    },
    /// Validate the configuration; errors as FILE:LINE:COL: message, exit 2 on error.
    Check {
        /// Also validate this repository's own pushgate.toml.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show which rule decides an operation, and why.
    Explain {
        #[arg(long)]
        user: String,
        #[arg(long = "ref", value_name = "REF")]
        ref_name: String,
        /// The operation asked about.
        #[arg(long, value_enum)]
        op: Op,
        /// Repository name (as under repos_root); default: rules for every repository.
        #[arg(long)]
        repo: Option<String>,
        /// Also run the path pass for this path.
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Dry-run the pre-receive decision for `<old> <new> <ref>` lines on stdin; changes nothing.
    Simulate {
        /// The repository (its git dir or work tree).
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The pusher (default: from the [identity] env variables).
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Install pushgate's hooks into repositories; existing hooks move to hooks/<name>.d/ and still run.
    Install {
        /// Decide per ref with the update hook (allowed refs of a mixed push land).
        #[arg(long, conflicts_with = "hg")]
        per_ref: bool,
        /// Mercurial repositories: add pushgate's hooks to .hg/hgrc.
        #[arg(long)]
        hg: bool,
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// Remove pushgate's hooks and restore the hooks that were there before.
    Uninstall {
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// SSH forced command: check access, set the identity, run git/hg (no shell).
    Shell { user: String },
    /// `authorized_keys` lines for every `<user>.pub` in DIR, with the forced command.
    Keys { dir: PathBuf },
    /// A self-contained tour in a temp dir: real pushes allowed, rejected, and delivered.
    Demo,
    /// The queues and deliveries in Prometheus text format (node_exporter's textfile collector).
    Metrics,
    /// Check the server's setup as the user it runs as: one ok/warn/FAIL line each, with
    /// what to do (exit 1 on a FAIL).
    Doctor {
        /// Check these repositories (default: every one under repos_root).
        #[arg(long = "repo", value_name = "DIR")]
        repos: Vec<PathBuf>,
    },
    /// The shell completion script for SHELL, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page pushgate(1), in roff, on stdout (what `install.sh` installs).
    #[command(hide = true)]
    Manpage,
}
