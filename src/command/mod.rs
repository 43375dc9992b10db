//! The commands that are not hooks: for admins (`check`, `explain`, `simulate`, `install`,
//! `queue`, `log`, `deliver`, `demo`) and for sshd (`shell`, `keys`, and the shell's
//! repository commands in `lifecycle`). Each is one function that is given what it reads
//! and where it writes, and returns how it ended.

pub mod check;
pub mod demo;
pub mod doctor;
pub mod explain;
pub mod info;
pub mod install;
pub mod lifecycle;
pub mod metrics;
pub mod queue;
pub mod shell;
pub mod simulate;
