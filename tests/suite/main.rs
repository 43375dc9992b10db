//! pushgate's integration tests: one crate that drives the real binary through real `git`
//! and `hg` pushes, real HTTP on 127.0.0.1 and real kills. Each module holds the stories of
//! one part of pushgate; `harness` is what they are told with.

// Tests may unwrap, print and call libc: the lints are for the product's code.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr, clippy::undocumented_unsafe_blocks)]

mod harness;

mod admin;
mod attacks;
mod checks;
mod config;
mod delivery;
mod event_schema;
mod extensions;
mod gate;
mod hg;
mod hostile;
mod http_backend;
mod identity;
mod install;
mod shell;
mod verdict;
