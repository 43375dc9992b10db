//! pushgate: one binary for a Git (and Mercurial) server's hooks. It decides pushes by rules,
//! asks `pre` extensions, and delivers every accepted push's event to `post` extensions,
//! durably and in order. See ARCHITECTURE.md for the map; `main.rs` is the entry point.
//!
//! The crate is a library as well as a binary so that unit tests can reach the parsers and
//! decisions directly.

#![recursion_limit = "256"]

pub mod account;
pub mod audit;
pub mod cli;
pub mod command;
pub mod config;
pub mod crashpoint;
pub mod env;
pub mod event;
pub mod extension;
pub mod gate;
pub mod git;
pub mod glob;
pub mod hg;
pub mod hook;
pub mod identity;
pub mod ids;
pub mod inventory;
pub mod outcome;
pub mod output;
pub mod policy;
pub mod push;
pub mod repository;
pub mod spool;
pub mod text;
pub mod time;
