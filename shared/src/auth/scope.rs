//! Scopes and access: what a client asks the token service for (`scope` parameters, as in
//! distribution's `docs/spec/auth/scope.md`) and what a token grants (its `access` claim).
//!
//! Pure domain: may call `names`; nothing of HTTP, storage or AWS.

use crate::names::RepositoryName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The most scopes one token request may carry; more are ignored (a push with mounts asks
/// for a handful).
pub const MAX_SCOPES: usize = 32;

/// An action on a repository. `All` is the scope grammar's `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
    All,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::All => "*",
        }
    }

    /// A known action; anything else is not granted (and not an error: the spec lets a
    /// token service grant a subset).
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            "*" => Some(Action::All),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scope a client asks for, once parsed. Scopes of unknown types, or whose repository
/// name is not valid, are dropped: nothing is granted for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    Repository(RepositoryName, BTreeSet<Action>),
    /// `registry:catalog:*`.
    Catalog,
}

/// Parses `scope` parameters: each may hold several scopes separated by spaces (the
/// challenge's form); the same repository asked twice has its actions merged.
pub fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Requested> {
    let mut out: Vec<Requested> = Vec::new();
    for scope in values
        .into_iter()
        .flat_map(|v| v.split(' '))
        .filter(|s| !s.is_empty())
        .take(MAX_SCOPES)
    {
        // type:name:actions, where only the name may hold more colons.
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        match kind {
            "repository" => {
                let Ok(repo) = RepositoryName::parse(name) else {
                    continue;
                };
                let actions: BTreeSet<Action> =
                    actions.split(',').filter_map(Action::parse).collect();
                match out.iter_mut().find_map(|r| match r {
                    Requested::Repository(known, set) if *known == repo => Some(set),
                    _ => None,
                }) {
                    Some(set) => set.extend(actions),
                    None => out.push(Requested::Repository(repo, actions)),
                }
            }
            "registry"
                if name == "catalog"
                    && actions.split(',').any(|a| a == "*")
                    && !out.contains(&Requested::Catalog) =>
            {
                out.push(Requested::Catalog);
            }
            _ => {}
        }
    }
    out
}

/// One entry of a token's `access` claim: `{"type","name","actions"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceActions {
    pub fn repository(repo: &RepositoryName, actions: &BTreeSet<Action>) -> ResourceActions {
        ResourceActions {
            kind: "repository".into(),
            name: repo.as_str().into(),
            actions: actions.iter().map(|a| a.as_str().to_string()).collect(),
        }
    }

    pub fn catalog() -> ResourceActions {
        ResourceActions {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }
}

/// What a request needs of the token's access: exactly one resource and action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Needed<'a> {
    Repository(&'a RepositoryName, Action),
    Catalog,
}

/// Whether `access` grants `needed`. Names are compared exactly: the token names the
/// canonical repository (only valid names are granted), and the request's name went
/// through the same parser. `*` grants every action.
pub fn allows(access: &[ResourceActions], needed: &Needed<'_>) -> bool {
    let (kind, name, action) = match needed {
        Needed::Repository(repo, action) => ("repository", repo.as_str(), action.as_str()),
        Needed::Catalog => ("registry", "catalog", "*"),
    };
    access.iter().any(|entry| {
        entry.kind == kind
            && entry.name == name
            && entry.actions.iter().any(|a| a == action || a == "*")
    })
}

/// The scope string of a challenge (`WWW-Authenticate: Bearer …,scope="…"`).
pub fn challenge_scope(needed: &Needed<'_>) -> String {
    match needed {
        // Ask for pull with push, as distribution does: a push also reads (HEADs blobs).
        Needed::Repository(repo, Action::Push) => format!("repository:{repo}:pull,push"),
        Needed::Repository(repo, action) => format!("repository:{repo}:{action}"),
        Needed::Catalog => "registry:catalog:*".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn scopes_parse_merge_and_drop_what_is_not_valid() {
        let scopes = parse_scopes([
            "repository:acme/app:pull",
            "repository:acme/app:push repository:acme/other:pull,bogus",
            "registry:catalog:*",
            "repository:ACME/app:pull",
            "repository:acme/../x:pull",
            "repository:acme%2Fapp:pull",
            "repository(plugin):acme/app:pull",
            "nonsense",
            "registry:catalog:pull",
        ]);
        assert_eq!(
            scopes,
            vec![
                Requested::Repository(repo("acme/app"), [Action::Pull, Action::Push].into()),
                Requested::Repository(repo("acme/other"), [Action::Pull].into()),
                Requested::Catalog,
            ]
        );
    }

    #[test]
    fn access_is_exact_by_name_type_and_action() {
        let app = repo("acme/app");
        let access = vec![
            ResourceActions::repository(&app, &[Action::Pull].into()),
            ResourceActions {
                kind: "registry".into(),
                name: "acme/other".into(),
                actions: vec!["*".into()],
            },
        ];
        assert!(allows(&access, &Needed::Repository(&app, Action::Pull)));
        assert!(!allows(&access, &Needed::Repository(&app, Action::Push)));
        let other = repo("acme/other");
        assert!(!allows(&access, &Needed::Repository(&other, Action::Pull)));
        assert!(!allows(&access, &Needed::Catalog));
        let all = vec![ResourceActions::repository(&app, &[Action::All].into())];
        assert!(allows(&all, &Needed::Repository(&app, Action::Delete)));
        assert!(allows(&[ResourceActions::catalog()], &Needed::Catalog));
    }

    #[test]
    fn challenges() {
        let app = repo("acme/app");
        assert_eq!(
            challenge_scope(&Needed::Repository(&app, Action::Push)),
            "repository:acme/app:pull,push"
        );
        assert_eq!(
            challenge_scope(&Needed::Repository(&app, Action::Delete)),
            "repository:acme/app:delete"
        );
        assert_eq!(challenge_scope(&Needed::Catalog), "registry:catalog:*");
    }
}
