//! The validator: turns the configuration as written ([`super::raw`]) into typed values,
//! collecting every error with its position instead of stopping at the first. Each table's
//! own checks live beside its type (rule.rs, groups.rs, check.rs, extension.rs); this file
//! holds what they share.

use super::error::{ConfigError, Source};
use super::scope::Scope;
use super::units::{self, Size};
use super::{Mode, raw};
use crate::glob::{Anchor, Glob};
use std::ops::Range;

pub struct Validator {
    pub errors: Vec<ConfigError>,
}

impl Validator {
    pub fn fail(&mut self, at: &Source, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(at.error(span, message.into()));
    }

    pub fn size(&mut self, at: &Source, text: &raw::Text) -> Option<Size> {
        units::parse_size(text.get_ref()).map_err(|e| self.fail(at, text.span(), e)).ok()
    }

    pub fn mode(&mut self, at: &Source, mode: &raw::Text) -> Mode {
        match mode.get_ref().as_str() {
            "enforce" => Mode::Enforce,
            "warn" => Mode::Warn,
            other => {
                self.fail(at, mode.span(), format!("mode {other:?} must be \"enforce\" or \"warn\""));
                Mode::Enforce
            }
        }
    }

    /// A list of environment variable names.
    pub fn env_names(&mut self, at: &Source, list: &raw::TextList) -> Vec<String> {
        for name in list.get_ref() {
            let text = name.get_ref();
            let valid = !text.is_empty()
                && !text.starts_with(|c: char| c.is_ascii_digit())
                && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.fail(at, name.span(), format!("{text:?} is not an environment variable name"));
            }
        }
        list.get_ref().iter().map(|n| n.get_ref().clone()).collect()
    }

    /// `repos` and `refs` keys; a missing key means every repository or every ref.
    pub fn scope(&mut self, at: &Source, repos: Option<&raw::TextList>, refs: Option<&raw::TextList>) -> Scope {
        Scope {
            repos: repos.map_or_else(Glob::everything, |l| self.globs(at, l, Anchor::Whole, "repos")),
            refs: refs.map_or_else(Glob::everything, |l| self.ref_globs(at, l)),
        }
    }

    pub fn globs(&mut self, at: &Source, list: &raw::TextList, anchor: Anchor, key: &str) -> Vec<Glob> {
        if list.get_ref().is_empty() {
            self.fail(
                at,
                list.span(),
                format!("`{key}` is empty: it would match nothing (remove the key to match all)"),
            );
        }
        list.get_ref()
            .iter()
            .filter_map(|p| Glob::new(p.get_ref(), anchor).map_err(|e| self.fail(at, p.span(), e)).ok())
            .collect()
    }

    pub fn ref_globs(&mut self, at: &Source, list: &raw::TextList) -> Vec<Glob> {
        for pattern in list.get_ref() {
            let p = pattern.get_ref();
            if !p.starts_with("refs/") {
                let suggested = if p.starts_with("heads/") || p.starts_with("tags/") || p.starts_with('*') {
                    format!("refs/{}", p.trim_start_matches('/'))
                } else {
                    format!("refs/heads/{p}")
                };
                self.fail(
                    at,
                    pattern.span(),
                    format!("ref pattern {p:?} must be a full ref name: did you mean {suggested:?}?"),
                );
            }
        }
        self.globs(at, list, Anchor::Whole, "refs")
    }
}
