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
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The jobs waiting (or dead), oldest first.
    List {
        /// Only this connector's jobs.
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        /// The dead letters instead of the waiting jobs.
        #[arg(long)]
        dead: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One job, with the body it delivers.
    Show {
        /// The job's id, as `queue list` shows it (<connector>.<number>.<change>).
        #[arg(value_parser = job)]
        job: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put dead jobs back at the front of their connector's queue.
    Retry {
        /// The dead jobs to retry, by id.
        #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = job)]
        jobs: Vec<String>,
        /// Every dead job (of --connector, if given).
        #[arg(long)]
        all: bool,
        /// With --all: only this connector's dead jobs.
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove jobs (waiting or dead).
    Drop {
        /// The jobs to remove, by id.
        #[arg(required = true, value_parser = job)]
        jobs: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-enable a connector disabled by a 410.
    Enable {
        /// The connector (a `post` extension's name).
        #[arg(value_parser = connector)]
        connector: String,
        /// Print JSON instead of text.
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
        /// The ref being updated.
        #[arg(value_name = "REF")]
        name: String,
        /// Its id before the push (all zeros: a create).
        old: String,
        /// Its id after the push (all zeros: a delete).
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
        /// Only this connector's attempts.
        #[arg(long, value_parser = connector)]
        connector: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mercurial hooks, as `install --hg` writes them: `pretxnclose` decides, `txnclose` spools.
    Hg {
        /// Which hg hook runs (as hgrc names it).
        #[arg(value_enum)]
        hook: HgHook,
    },
    /// Validate the configuration; errors as FILE:LINE:COL: message, exit 2 on error.
    Check {
        /// Also validate this repository's own pushgate.toml.
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show which rule decides an operation, and why.
    Explain {
        /// The pusher, as the hooks would see them.
        #[arg(long)]
        user: String,
        /// The full ref name (refs/heads/main, refs/tags/v1.0); not for the whole-repository
        /// ops (read, repo-create, repo-delete).
        #[arg(long = "ref", value_name = "REF")]
        ref_name: Option<String>,
        /// The operation asked about.
        #[arg(long, value_enum)]
        op: Op,
        /// Repository name (as under repos_root); default: rules for every repository.
        #[arg(long)]
        repo: Option<String>,
        /// Also run the path pass for this path.
        #[arg(long)]
        path: Option<String>,
        /// Print JSON instead of text.
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
        /// Print JSON instead of text.
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
        /// The repositories (git dirs or work trees; hg roots with --hg).
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// Remove pushgate's hooks and restore the hooks that were there before.
    Uninstall {
        /// The repositories to take pushgate's hooks out of.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<PathBuf>,
    },
    /// SSH forced command: check access, set the identity, run git/hg (no shell).
    Shell {
        /// The user the key belongs to (as `pushgate keys` writes it).
        user: String,
    },
    /// `authorized_keys` lines for every `<user>.pub` in DIR, with the forced command.
    Keys {
        /// A directory of public keys, one <user>.pub per user.
        dir: PathBuf,
    },
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
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page pushgate(1), in roff, on stdout (what `install.sh` installs).
    #[command(hide = true)]
    Manpage,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every visible flag and argument of every command, with the commands' path to it.
    fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            let builtin = ["help", "version"].contains(&arg.get_id().as_str());
            if !builtin && arg.get_help().is_none() {
                found.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
            if sub.get_about().is_none() {
                found.push(format!("{path} {}", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_command_flag_and_argument_has_help_text() {
        let mut found = Vec::new();
        undocumented(&Cli::command(), "pushgate", &mut found);
        assert!(found.is_empty(), "no --help text: {found:#?}");
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
