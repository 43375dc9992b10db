//! `[groups]`: named sets of users, nesting resolved (a cycle is an error), and
//! `[users.<name>]`: facts about users.

use super::error::Source;
use super::raw;
use super::suggest::suggestion;
use super::validate::Validator;
use crate::identity::{USER_CHARS, valid_user_name};
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// Groups with nesting resolved: who belongs to what, directly or through other groups.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Groups {
    /// The groups `user` belongs to, sorted.
    pub fn of(&self, user: &str) -> Vec<String> {
        self.members.iter().filter(|(_, users)| users.contains(user)).map(|(g, _)| g.clone()).collect()
    }

    pub fn contains(&self, group: &str, user: &str) -> bool {
        self.members.get(group).is_some_and(|users| users.contains(user))
    }

    /// Lowercase every member (`[identity] fold_case`).
    pub fn fold_case(&mut self) {
        for users in self.members.values_mut() {
            *users = std::mem::take(users).into_iter().map(|u| u.to_ascii_lowercase()).collect();
        }
    }

    pub fn has(&self, group: &str) -> bool {
        self.members.contains_key(group)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }
}

impl Validator {
    pub fn groups(&mut self, at: &Source, raw: &BTreeMap<Spanned<String>, raw::TextList>) -> Groups {
        let direct: BTreeMap<&str, &raw::TextList> = raw.iter().map(|(k, v)| (k.get_ref().as_str(), v)).collect();
        for (name, members) in raw {
            if !valid_user_name(name.get_ref()) {
                self.fail(
                    at,
                    name.span(),
                    format!("group name {:?} must match [{USER_CHARS}]{{1,128}}", name.get_ref()),
                );
            }
            for member in members.get_ref() {
                match member.get_ref().strip_prefix('@') {
                    Some(group) if !direct.contains_key(group) => {
                        let hint = suggestion(group, direct.keys().copied(), "@");
                        self.fail(at, member.span(), format!("unknown group `@{group}`{hint}"));
                    }
                    Some(_) => {}
                    None if !valid_user_name(member.get_ref()) => {
                        self.fail(
                            at,
                            member.span(),
                            format!("user name {:?} must match [{USER_CHARS}]{{1,128}}", member.get_ref()),
                        );
                    }
                    None => {}
                }
            }
        }
        let mut members = BTreeMap::new();
        let mut in_reported_cycle: BTreeSet<String> = BTreeSet::new();
        for (name, list) in raw {
            let mut users = BTreeSet::new();
            let mut path = vec![name.get_ref().as_str()];
            match collect_members(&direct, list, &mut path, &mut users) {
                Ok(()) => {
                    members.insert(name.get_ref().clone(), users);
                }
                // One cycle, one error: its other groups would report it again.
                Err(cycle) if !cycle.iter().any(|g| in_reported_cycle.contains(g)) => {
                    let shown: Vec<String> = cycle.iter().map(|g| format!("@{g}")).collect();
                    self.fail(at, name.span(), format!("group cycle: {}", shown.join(" -> ")));
                    in_reported_cycle.extend(cycle);
                }
                Err(_) => {}
            }
        }
        Groups { members }
    }

    /// `[users.<name>]` tables: each user's emails, lowercase, for `author_is_pusher`.
    pub fn users(
        &mut self,
        at: &Source,
        users: &BTreeMap<Spanned<String>, raw::User>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (name, facts) in users {
            out.insert(name.get_ref().clone(), facts.emails.iter().map(|e| e.get_ref().to_ascii_lowercase()).collect());
            if !valid_user_name(name.get_ref()) {
                self.fail(
                    at,
                    name.span(),
                    format!("user name {:?} must match [{USER_CHARS}]{{1,128}}", name.get_ref()),
                );
            }
            for email in facts.emails.iter().filter(|e| !e.get_ref().contains('@')) {
                self.fail(at, email.span(), format!("{:?} is not an email address", email.get_ref()));
            }
        }
        out
    }
}

/// Depth-first expansion of a group's members; `path` holds the groups being expanded, so
/// meeting one of them again is a cycle.
fn collect_members<'a>(
    direct: &BTreeMap<&'a str, &'a raw::TextList>,
    list: &'a raw::TextList,
    path: &mut Vec<&'a str>,
    users: &mut BTreeSet<String>,
) -> Result<(), Vec<String>> {
    for member in list.get_ref() {
        match member.get_ref().strip_prefix('@') {
            Some(group) => {
                if let Some(start) = path.iter().position(|g| *g == group) {
                    path.push(group);
                    return Err(path[start..].iter().map(|g| g.to_string()).collect());
                }
                let Some(nested) = direct.get(group) else {
                    continue;
                };
                path.push(group);
                collect_members(direct, nested, path, users)?;
                path.pop();
            }
            None => {
                users.insert(member.get_ref().clone());
            }
        }
    }
    Ok(())
}
