//! Docker token authentication (distribution's `docs/spec/auth/token.md`): who the caller is
//! (HTTP Basic credentials checked against argon2id hashes, or anonymous), what it may do
//! (the rules below, over the [`AccessStore`] port), the tokens that say so (RS256 JWTs
//! signed through the [`Signer`] port), and their verification.
//!
//! May call: the domain (`names`, `error`), the ports (`AccessStore`, `MetadataStore`,
//! `Signer`), argon2 and jsonwebtoken. Must not know HTTP (the `http` module parses
//! headers and calls this) nor any backend or AWS.
//!
//! # The rules
//!
//! | who | may |
//! |---|---|
//! | anyone, anonymous included | pull a **public** repository |
//! | a principal granted `read` on a repository | pull it |
//! | a principal granted `write` or `admin` | pull, push and delete in it |
//! | user `alice` | everything in namespace `alice` (`admin` on `alice/*`) |
//! | a principal granted *create* on namespace `team` | push a repository of `team` that does not exist yet: the token service records it as the repository's creator with `admin`, so it keeps its rights once the push has created it (one creator per repository; an existing repository needs a grant) |
//! | any signed-in principal (not anonymous) | the catalog (`registry:catalog:*`), which lists only the repositories it may pull |
//!
//! Robots (`namespace+name`) hold only what they are granted; they own no namespace.
//! Repositories are private unless made public. A scope asking `*` gets `*` when the
//! caller holds pull, push and delete, else the actions it holds.

pub mod scope;
pub mod secrets;
pub mod token;

use crate::error::{ErrorCode, RegistryError};
use crate::names::RepositoryName;
use crate::ports::{
    AccessStore, MetadataStore, Page, PageRequest, Permission, PrincipalRecord, RepositoryAccess,
    Signer, StoreError, StoreResult,
};
use crate::registry::Registry;
use scope::{Action, Requested, ResourceActions};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use token::{Claims, Expectations, Verifier};
use tokio::sync::OnceCell;

/// How the token service and the verifiers are configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// The tokens' `iss`.
    pub issuer: String,
    /// The registry's name as clients see it in challenges, and the tokens' `aud`.
    pub service: String,
    /// The token service's URL, sent in every challenge (`…/v2/auth`); `None`: the URL of
    /// the API the request came through, derived per request (see `http::auth`).
    pub realm: Option<String>,
    /// How long a token lives (distribution: at least 60 s).
    pub token_ttl: Duration,
    /// The clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// The path of the token service's route.
pub const TOKEN_PATH: &str = "/v2/auth";

impl AuthSettings {
    pub const DEFAULT_ISSUER: &'static str = "quayside";
    pub const DEFAULT_SERVICE: &'static str = "quayside";
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

    /// The defaults, with the token service at `realm`.
    pub fn with_realm(realm: impl Into<String>) -> AuthSettings {
        AuthSettings {
            realm: Some(realm.into()),
            ..AuthSettings::with_realm_per_request()
        }
    }

    /// The defaults, with the token service on the host each request came to.
    pub fn with_realm_per_request() -> AuthSettings {
        AuthSettings {
            issuer: Self::DEFAULT_ISSUER.into(),
            service: Self::DEFAULT_SERVICE.into(),
            realm: None,
            token_ttl: Self::DEFAULT_TTL,
            leeway: Self::DEFAULT_LEEWAY,
        }
    }

    /// From `QUAYSIDE_AUTH_REALM` (unset or empty: the API each request came through),
    /// `QUAYSIDE_AUTH_ISSUER`, `QUAYSIDE_AUTH_SERVICE` (both default `quayside`) and
    /// `QUAYSIDE_AUTH_TOKEN_SECONDS` (default 300, 60 to 86400).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<AuthSettings, String> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut settings = AuthSettings::with_realm_per_request();
        settings.realm = get("QUAYSIDE_AUTH_REALM");
        if let Some(issuer) = get("QUAYSIDE_AUTH_ISSUER") {
            settings.issuer = issuer;
        }
        if let Some(service) = get("QUAYSIDE_AUTH_SERVICE") {
            settings.service = service;
        }
        if let Some(seconds) = get("QUAYSIDE_AUTH_TOKEN_SECONDS") {
            settings.token_ttl = seconds
                .parse::<u64>()
                .ok()
                .filter(|s| (60..=86400).contains(s))
                .map(Duration::from_secs)
                .ok_or(format!(
                    "QUAYSIDE_AUTH_TOKEN_SECONDS={seconds:?} is not a number of seconds in 60..=86400"
                ))?;
        }
        Ok(settings)
    }

    pub fn from_env() -> Result<AuthSettings, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Whether `name` is a valid user name: a namespace component, so that user `alice` owns
/// namespace `alice`.
pub fn is_user_name(name: &str) -> bool {
    name.len() <= 64 && RepositoryName::new(name, "x").is_ok()
}

/// Whether `name` is a valid robot name: `namespace+name`, both parts user-name-like.
pub fn is_robot_name(name: &str) -> bool {
    name.split_once('+')
        .is_some_and(|(ns, robot)| is_user_name(ns) && is_user_name(robot))
}

/// The caller of a token request, once authenticated.
#[derive(Clone, Debug)]
pub enum Principal {
    Anonymous,
    User(PrincipalRecord),
    Robot(PrincipalRecord),
}

impl Principal {
    pub fn name(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::User(r) | Principal::Robot(r) => Some(&r.name),
        }
    }

    fn record(&self) -> Option<&PrincipalRecord> {
        match self {
            Principal::Anonymous => None,
            Principal::User(r) | Principal::Robot(r) => Some(r),
        }
    }

    /// The namespace a user owns.
    fn own_namespace(&self) -> Option<&str> {
        match self {
            Principal::User(r) => Some(&r.name),
            _ => None,
        }
    }

    fn may_create_in(&self, namespace: &str) -> bool {
        self.own_namespace() == Some(namespace)
            || self
                .record()
                .is_some_and(|r| r.create_namespaces.contains(namespace))
    }
}

/// The actions `subject` (a principal's name; `None`: anonymous) holds on `repo`, by the
/// rules of this module's doc, before any create right.
pub fn held_actions(
    subject: Option<&str>,
    repo: &RepositoryName,
    access: &RepositoryAccess,
) -> BTreeSet<Action> {
    let mut permission = access.permission.filter(|_| subject.is_some());
    if let Some(name) = subject
        && is_user_name(name)
        && repo.namespace() == name
    {
        permission = Some(Permission::Admin);
    }
    let mut held = BTreeSet::new();
    if access.public {
        held.insert(Action::Pull);
    }
    match permission {
        Some(Permission::Read) => {
            held.insert(Action::Pull);
        }
        Some(Permission::Write | Permission::Admin) => {
            held.extend([Action::Pull, Action::Push, Action::Delete]);
        }
        None => {}
    }
    held
}

/// The part of `asked` that `held` covers; `*` when asked and everything is held.
fn intersect(asked: &BTreeSet<Action>, held: &BTreeSet<Action>) -> BTreeSet<Action> {
    let everything = [Action::Pull, Action::Push, Action::Delete];
    if asked.contains(&Action::All) {
        if everything.iter().all(|a| held.contains(a)) {
            return [Action::All].into();
        }
        return held.clone();
    }
    asked.intersection(held).copied().collect()
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// Unknown principal or wrong secret: the same answer for both.
    #[error("invalid username or password")]
    BadCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token as the token service answers it.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    /// RFC 3339, UTC.
    pub issued_at: String,
    pub claims: Claims,
}

/// Token authentication of one registry: its settings, who may do what, and the verifier
/// built once from the signer's public key.
pub struct Auth {
    pub settings: AuthSettings,
    pub access: Arc<dyn AccessStore>,
    verifier: OnceCell<Arc<Verifier>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(access: Arc<dyn AccessStore>, settings: AuthSettings) -> Auth {
        Auth {
            settings,
            access,
            verifier: OnceCell::new(),
        }
    }

    /// The verifier, built on first use from [`Signer::public_jwk`] (one `GetPublicKey` per
    /// container on AWS) and kept.
    pub async fn verifier(&self, signer: &dyn Signer) -> StoreResult<Arc<Verifier>> {
        self.verifier
            .get_or_try_init(|| async {
                let jwk = signer.public_jwk().await?;
                let expect = Expectations {
                    issuer: self.settings.issuer.clone(),
                    audience: self.settings.service.clone(),
                    leeway_seconds: self.settings.leeway.as_secs(),
                };
                Verifier::new(&jwk, &expect)
                    .map(Arc::new)
                    .map_err(StoreError::backend)
            })
            .await
            .map(Arc::clone)
    }

    /// Checks Basic credentials: `None` is the anonymous caller; a wrong secret or an
    /// unknown name is [`AuthFailure::BadCredentials`], after the same work either way.
    pub async fn authenticate(
        &self,
        credentials: Option<(&str, &str)>,
    ) -> Result<Principal, AuthFailure> {
        let Some((name, secret)) = credentials else {
            return Ok(Principal::Anonymous);
        };
        let robot = is_robot_name(name);
        let record = if robot || is_user_name(name) {
            self.access.principal(name).await?
        } else {
            None
        };
        let secret = secret.to_string();
        // argon2 costs tens of milliseconds of CPU: off the async workers.
        let (record, ok) = tokio::task::spawn_blocking(move || match record {
            Some(record) => {
                let ok = secrets::verify_secret(&secret, &record.secret_hash);
                (Some(record), ok)
            }
            None => {
                secrets::verify_nothing(&secret);
                (None, false)
            }
        })
        .await
        .map_err(|e| StoreError::backend(format!("password check: {e}")))?;
        match record {
            Some(record) if ok => Ok(if robot {
                Principal::Robot(record)
            } else {
                Principal::User(record)
            }),
            _ => {
                tracing::warn!(target: "quayside::audit", action = "login_failed", principal = name);
                Err(AuthFailure::BadCredentials)
            }
        }
    }

    /// What `principal` gets of what it asked: the `access` claim of its token. A push it
    /// may make only through a create right claims the repository first (see the module
    /// doc), if it does not exist and no one claimed it.
    pub async fn grant(
        &self,
        metadata: &dyn MetadataStore,
        principal: &Principal,
        requested: &[Requested],
    ) -> StoreResult<Vec<ResourceActions>> {
        let mut granted = Vec::new();
        for request in requested {
            match request {
                Requested::Catalog => {
                    if principal.name().is_some() {
                        granted.push(ResourceActions::catalog());
                    }
                }
                Requested::Repository(repo, asked) => {
                    let access = self
                        .access
                        .repository_access(repo, principal.name())
                        .await?;
                    let mut held = held_actions(principal.name(), repo, &access);
                    let wants_push = asked.contains(&Action::Push) || asked.contains(&Action::All);
                    if wants_push
                        && !held.contains(&Action::Push)
                        && let Some(name) = principal.name()
                        && principal.may_create_in(repo.namespace())
                        && access.creator.is_none()
                        && !metadata.repository_exists(repo).await?
                        && self.access.claim_repository(repo, name).await?
                    {
                        tracing::info!(
                            target: "quayside::audit",
                            action = "claim_repository",
                            repository = %repo,
                            principal = name,
                        );
                        held.extend([Action::Pull, Action::Push, Action::Delete]);
                    }
                    let actions = intersect(asked, &held);
                    if !actions.is_empty() {
                        granted.push(ResourceActions::repository(repo, &actions));
                    }
                }
            }
        }
        Ok(granted)
    }

    /// Signs a token of `access` for `principal`, valid from now for the configured time.
    pub async fn issue(
        &self,
        signer: &dyn Signer,
        principal: &Principal,
        access: Vec<ResourceActions>,
    ) -> StoreResult<IssuedToken> {
        let now = token::now();
        let ttl = self.settings.token_ttl.as_secs();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: principal.name().unwrap_or_default().to_string(),
            aud: self.settings.service.clone(),
            exp: now + ttl,
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            access,
        };
        let token = token::sign(signer, &claims).await?;
        tracing::info!(
            target: "quayside::audit",
            action = "issue_token",
            principal = %claims.sub,
            access = ?claims.access,
            jti = %claims.jti,
        );
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            issued_at: humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_secs(now),
            )
            .to_string(),
            claims,
        })
    }
}

impl Registry {
    /// The token service: authenticates `credentials`, grants what the caller holds of
    /// `requested`, signs the token. `UNAUTHORIZED` for bad credentials.
    pub async fn issue_token(
        &self,
        credentials: Option<(&str, &str)>,
        requested: &[Requested],
    ) -> Result<IssuedToken, RegistryError> {
        let auth = self.auth_or_unsupported()?;
        let principal = match auth.authenticate(credentials).await {
            Ok(principal) => principal,
            Err(AuthFailure::BadCredentials) => {
                return Err(RegistryError::new(
                    ErrorCode::Unauthorized,
                    "invalid username or password",
                ));
            }
            Err(AuthFailure::Store(e)) => return Err(e.into()),
        };
        let access = auth
            .grant(self.metadata.as_ref(), &principal, requested)
            .await?;
        Ok(auth.issue(self.signer.as_ref(), &principal, access).await?)
    }

    /// A page of the repositories `subject` may pull (`None`: anonymous), in name order:
    /// the catalog as a signed-in caller sees it. Reads the whole catalog after `last` in
    /// the worst case (a caller who may see little of a large registry).
    pub async fn visible_catalog(
        &self,
        page: &PageRequest,
        subject: Option<&str>,
    ) -> Result<Page, RegistryError> {
        let auth = self.auth_or_unsupported()?;
        let mut out = Page::default();
        if page.limit == 0 {
            return Ok(out);
        }
        let mut cursor = page.last.clone();
        loop {
            let batch = self
                .metadata
                .repositories(&PageRequest {
                    limit: page.limit.clamp(50, 100),
                    last: cursor.clone(),
                })
                .await?;
            let repos: Vec<RepositoryName> = batch
                .names
                .iter()
                .filter_map(|n| RepositoryName::parse(n).ok())
                .collect();
            let access = auth.access.repositories_access(&repos, subject).await?;
            for (repo, access) in repos.iter().zip(&access) {
                if held_actions(subject, repo, access).contains(&Action::Pull) {
                    if out.names.len() == page.limit {
                        out.more = true;
                        return Ok(out);
                    }
                    out.names.push(repo.as_str().to_string());
                }
            }
            if !batch.more {
                return Ok(out);
            }
            cursor = batch.names.last().cloned();
        }
    }

    fn auth_or_unsupported(&self) -> Result<&Auth, RegistryError> {
        self.auth.as_deref().ok_or_else(|| {
            RegistryError::new(
                ErrorCode::Unsupported,
                "this registry runs without authentication: no token is needed",
            )
            .with_status(404)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    #[test]
    fn names() {
        assert!(is_user_name("alice"));
        assert!(is_user_name("a.b-c"));
        assert!(!is_user_name("Alice"));
        assert!(!is_user_name("alice+ci"));
        assert!(!is_user_name(""));
        assert!(is_robot_name("alice+ci"));
        assert!(!is_robot_name("alice+"));
        assert!(!is_robot_name("alice+ci+x"));
        assert!(!is_robot_name("alice"));
    }

    #[test]
    fn rules() {
        let private = RepositoryAccess::default();
        let public = RepositoryAccess {
            public: true,
            ..Default::default()
        };
        let read = RepositoryAccess {
            permission: Some(Permission::Read),
            ..Default::default()
        };
        let write = RepositoryAccess {
            permission: Some(Permission::Write),
            ..Default::default()
        };
        let all: BTreeSet<Action> = [Action::Pull, Action::Push, Action::Delete].into();
        let pull: BTreeSet<Action> = [Action::Pull].into();
        let app = repo("acme/app");
        assert!(held_actions(None, &app, &private).is_empty());
        assert_eq!(held_actions(None, &app, &public), pull);
        // A grant read for an anonymous caller (it cannot have one) counts for nothing.
        assert!(held_actions(None, &app, &write).is_empty());
        assert_eq!(held_actions(Some("bob"), &app, &read), pull);
        assert_eq!(held_actions(Some("bob"), &app, &write), all);
        assert_eq!(held_actions(Some("acme"), &app, &private), all);
        // A robot of the namespace owns nothing.
        assert!(held_actions(Some("acme+ci"), &app, &private).is_empty());

        let asked_all: BTreeSet<Action> = [Action::All].into();
        assert_eq!(intersect(&asked_all, &all), [Action::All].into());
        assert_eq!(intersect(&asked_all, &pull), pull);
        let push_pull: BTreeSet<Action> = [Action::Pull, Action::Push].into();
        assert_eq!(intersect(&push_pull, &pull), pull);
    }

    #[test]
    fn settings_from_variables() {
        // No realm (or an empty one, as the template passes it): per request.
        assert_eq!(
            AuthSettings::from_lookup(|_| None).unwrap(),
            AuthSettings::with_realm_per_request()
        );
        assert_eq!(
            AuthSettings::from_lookup(|n| (n == "QUAYSIDE_AUTH_REALM").then(String::new))
                .unwrap()
                .realm,
            None
        );
        let s = AuthSettings::from_lookup(|n| {
            (n == "QUAYSIDE_AUTH_REALM").then(|| "https://r.example/v2/auth".to_string())
        })
        .unwrap();
        assert_eq!(s, AuthSettings::with_realm("https://r.example/v2/auth"));
        let bad = AuthSettings::from_lookup(|n| match n {
            "QUAYSIDE_AUTH_REALM" => Some("https://r/v2/auth".into()),
            "QUAYSIDE_AUTH_TOKEN_SECONDS" => Some("5".into()),
            _ => None,
        });
        assert!(bad.is_err());
    }
}
