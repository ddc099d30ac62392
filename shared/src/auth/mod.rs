//! Docker token authentication (distribution's `docs/spec/auth/token.md`, and its OAuth2
//! form `oauth.md`): who the caller is (a name and secret checked against argon2id hashes, a
//! refresh token, or anonymous), what it may do (the rules below, over the [`AccessStore`]
//! port), the tokens that say so (RS256 JWTs signed through the [`Signer`] port), and their
//! verification.
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
//! | user `alice` | everything in namespace `alice` (`admin` on `alice/*`, at any depth: `alice/team/app` too) |
//! | a principal granted *create* on namespace `team` | push a repository of `team` (any name whose first component is `team`) that does not exist yet: the token service records it as the repository's creator with `admin`, so it keeps its rights once the push has created it (one creator per repository; an existing repository needs a grant) |
//! | any signed-in principal (not anonymous) | the catalog (`registry:catalog:*`), which lists only the repositories it may pull |
//!
//! # Refresh tokens
//!
//! A signed-in caller that asks for offline access (`access_type=offline` in the OAuth2
//! form, `offline_token=true` in the GET form) also gets a refresh token: a JWT of its own
//! kind (see [`token`]), valid [`AuthSettings::refresh_ttl`] (30 days by default), that
//! stands for the principal instead of its secret. Nothing is stored: refreshing checks the
//! signature, that the principal still exists and that its secret hash is still the one the
//! token was issued under, so deleting a principal, changing a password or rotating a robot
//! secret revokes its refresh tokens at once. The access of each token is decided anew by
//! the rules when it is issued, as for a password. Refreshing answers the same refresh token
//! (the spec: no new one). Anonymous callers get none.
//!
//! Robots (`namespace+name`) hold only what they are granted; they own no namespace.
//! Repositories are private unless made public. A scope asking `*` gets `*` when the
//! caller holds pull, push and delete, else the actions it holds.

pub mod scope;
pub mod secrets;
pub mod token;

use crate::names::RepositoryName;
use crate::ports::{
    AccessStore, MetadataStore, Permission, PrincipalRecord, RepositoryAccess, Signer, StoreError,
    StoreResult,
};
use scope::ResourceActions;
pub use scope::{Action, Requested};
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
    /// How long a refresh token lives.
    pub refresh_ttl: Duration,
    /// The clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// How long an upload capability lives: as long as an upload may stay unfinished
    /// (`QUAYSIDE_UPLOAD_MAX_AGE`), so that a slow push of a large layer keeps its right.
    pub upload_ttl: Duration,
}

/// The path of the token service's route.
pub const TOKEN_PATH: &str = "/v2/auth";

impl AuthSettings {
    pub const DEFAULT_ISSUER: &'static str = "quayside";
    pub const DEFAULT_SERVICE: &'static str = "quayside";
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
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
            refresh_ttl: Self::DEFAULT_REFRESH_TTL,
            leeway: Self::DEFAULT_LEEWAY,
            upload_ttl: crate::ports::DEFAULT_UPLOAD_MAX_AGE,
        }
    }

    /// From `QUAYSIDE_AUTH_REALM` (unset or empty: the API each request came through),
    /// `QUAYSIDE_AUTH_ISSUER`, `QUAYSIDE_AUTH_SERVICE` (both default `quayside`),
    /// `QUAYSIDE_AUTH_TOKEN_SECONDS` (default 300, 60 to 86400) and
    /// `QUAYSIDE_AUTH_REFRESH_SECONDS` (default 2592000, 30 days; 3600 to 31536000) and
    /// `QUAYSIDE_UPLOAD_MAX_AGE` (how long an upload capability lives).
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
        if let Some(seconds) = get("QUAYSIDE_AUTH_REFRESH_SECONDS") {
            settings.refresh_ttl = seconds
                .parse::<u64>()
                .ok()
                .filter(|s| (3600..=31_536_000).contains(s))
                .map(Duration::from_secs)
                .ok_or(format!(
                    "QUAYSIDE_AUTH_REFRESH_SECONDS={seconds:?} is not a number of seconds in 3600..=31536000"
                ))?;
        }
        if let Some(age) = get("QUAYSIDE_UPLOAD_MAX_AGE") {
            settings.upload_ttl = crate::ports::parse_upload_max_age(&age)?;
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
    name.len() <= 64 && crate::names::is_component(name)
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
    /// A refresh token, when offline access was asked for (or the one refreshed with).
    pub refresh_token: Option<String>,
}

/// How a caller of the token service proves who it is.
#[derive(Clone, Copy, Debug)]
pub enum Grant<'a> {
    /// A name and secret (HTTP Basic, or the OAuth2 `password` grant); `None`: anonymous.
    Password(Option<(&'a str, &'a str)>),
    /// A refresh token the token service issued (the OAuth2 `refresh_token` grant).
    RefreshToken(&'a str),
}

/// Token authentication of one registry: its settings, who may do what, and the verifier
/// built once from the signer's public key.
pub struct Auth {
    pub settings: AuthSettings,
    pub access: Arc<dyn AccessStore>,
    verifier: OnceCell<Arc<Verifier>>,
    refresh_verifier: OnceCell<Arc<Verifier>>,
    upload_verifier: OnceCell<Arc<Verifier>>,
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
            refresh_verifier: OnceCell::new(),
            upload_verifier: OnceCell::new(),
        }
    }

    fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.settings.issuer.clone(),
            audience: self.settings.service.clone(),
            leeway_seconds: self.settings.leeway.as_secs(),
        }
    }

    /// The verifier, built on first use from [`Signer::public_jwk`] (one `GetPublicKey` per
    /// container on AWS) and kept.
    pub async fn verifier(&self, signer: &dyn Signer) -> StoreResult<Arc<Verifier>> {
        self.verifier
            .get_or_try_init(|| async {
                let jwk = signer.public_jwk().await?;
                Verifier::new(&jwk, &self.expectations())
                    .map(Arc::new)
                    .map_err(StoreError::backend)
            })
            .await
            .map(Arc::clone)
    }

    /// The verifier of refresh tokens, built and kept as [`Auth::verifier`].
    async fn refresh_verifier(&self, signer: &dyn Signer) -> StoreResult<Arc<Verifier>> {
        self.refresh_verifier
            .get_or_try_init(|| async {
                let jwk = signer.public_jwk().await?;
                Verifier::for_refresh(&jwk, &self.expectations())
                    .map(Arc::new)
                    .map_err(StoreError::backend)
            })
            .await
            .map(Arc::clone)
    }

    /// A capability for upload session `upload` of `repo`, opened by `subject` (see
    /// [`token::UploadClaims`]): alive [`AuthSettings::upload_ttl`].
    pub async fn issue_upload(
        &self,
        signer: &dyn Signer,
        subject: Option<&str>,
        repo: &RepositoryName,
        upload: &str,
        registry: &str,
    ) -> StoreResult<String> {
        let now = token::now();
        let claims = token::UploadClaims {
            iss: self.settings.issuer.clone(),
            sub: subject.unwrap_or_default().to_string(),
            aud: token::upload_audience(&self.settings.service),
            exp: now.saturating_add(self.settings.upload_ttl.as_secs()),
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            repository: repo.to_string(),
            upload: upload.to_string(),
            registry: registry.to_string(),
        };
        token::sign_upload(signer, &claims).await
    }

    /// The claims of `capability` if it checks out and is for session `upload` of `repo`.
    pub async fn check_upload(
        &self,
        signer: &dyn Signer,
        capability: &str,
        repo: &RepositoryName,
        upload: &str,
    ) -> StoreResult<Result<token::UploadClaims, token::InvalidToken>> {
        let verifier = self
            .upload_verifier
            .get_or_try_init(|| async {
                let jwk = signer.public_jwk().await?;
                Verifier::for_upload(&jwk, &self.expectations())
                    .map(Arc::new)
                    .map_err(StoreError::backend)
            })
            .await?;
        Ok(verifier.verify_upload(capability).and_then(|claims| {
            if claims.repository != repo.as_str() {
                Err(token::InvalidToken(format!(
                    "an upload capability of {}, not {repo}",
                    claims.repository
                )))
            } else if claims.upload != upload {
                Err(token::InvalidToken(format!(
                    "an upload capability of session {}, not {upload}",
                    claims.upload
                )))
            } else {
                Ok(claims)
            }
        }))
    }

    /// The principal a refresh token stands for, if the token checks out (see
    /// [`token::Verifier::verify_refresh`]), the principal still exists and its secret is
    /// still the one the token was issued under; else [`AuthFailure::BadCredentials`], the
    /// same answer as a wrong password.
    pub async fn authenticate_refresh(
        &self,
        signer: &dyn Signer,
        refresh_token: &str,
    ) -> Result<Principal, AuthFailure> {
        let verifier = self.refresh_verifier(signer).await?;
        let claims = match verifier.verify_refresh(refresh_token) {
            Ok(claims) => claims,
            Err(e) => {
                tracing::warn!(target: "quayside::audit", action = "refresh_refused", reason = %e);
                return Err(AuthFailure::BadCredentials);
            }
        };
        let robot = is_robot_name(&claims.sub);
        let record = if robot || is_user_name(&claims.sub) {
            self.access.principal(&claims.sub).await?
        } else {
            None
        };
        match record {
            Some(record) if token::secret_fingerprint(&record.secret_hash) == claims.sfp => {
                Ok(if robot {
                    Principal::Robot(record)
                } else {
                    Principal::User(record)
                })
            }
            record => {
                tracing::warn!(
                    target: "quayside::audit",
                    action = "refresh_refused",
                    principal = %claims.sub,
                    jti = %claims.jti,
                    reason = if record.is_some() { "the secret changed" } else { "no such principal" },
                );
                Err(AuthFailure::BadCredentials)
            }
        }
    }

    /// A refresh token for `principal` (none for an anonymous caller), valid from now for
    /// [`AuthSettings::refresh_ttl`].
    pub async fn issue_refresh(
        &self,
        signer: &dyn Signer,
        principal: &Principal,
    ) -> StoreResult<Option<String>> {
        let Some(record) = principal.record() else {
            return Ok(None);
        };
        let now = token::now();
        let claims = token::RefreshClaims {
            iss: self.settings.issuer.clone(),
            sub: record.name.clone(),
            aud: token::refresh_audience(&self.settings.service),
            exp: now.saturating_add(self.settings.refresh_ttl.as_secs()),
            nbf: now,
            iat: now,
            jti: token::new_jti(),
            sfp: token::secret_fingerprint(&record.secret_hash),
        };
        let refresh = token::sign_refresh(signer, &claims).await?;
        tracing::info!(
            target: "quayside::audit",
            action = "issue_refresh_token",
            principal = %claims.sub,
            jti = %claims.jti,
        );
        Ok(Some(refresh))
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

    /// Whether a new token could give `subject` what `needed` asks, though the token it
    /// showed lacks it: it holds the action, or, for a push, the repository does not exist
    /// yet (a token request may claim it by a create right). Then the gate asks the client
    /// to fetch one (`401 insufficient_scope`, which clients act on); else it is `403`.
    pub async fn could_grant(
        &self,
        metadata: &dyn MetadataStore,
        subject: Option<&str>,
        needed: &scope::Needed<'_>,
    ) -> StoreResult<bool> {
        match needed {
            scope::Needed::Catalog => Ok(subject.is_some()),
            scope::Needed::Repository(repo, action) => {
                let access = self.access.repository_access(repo, subject).await?;
                let held = held_actions(subject, repo, &access);
                if held.contains(action) || held.contains(&Action::All) {
                    return Ok(true);
                }
                let Some(name) = subject.filter(|_| *action == Action::Push) else {
                    return Ok(false);
                };
                if access.creator.is_some() || metadata.repository_exists(repo).await? {
                    return Ok(false);
                }
                let principal = match self.access.principal(name).await? {
                    Some(record) if is_robot_name(name) => Principal::Robot(record),
                    Some(record) => Principal::User(record),
                    None => return Ok(false),
                };
                Ok(principal.may_create_in(repo.namespace()))
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
            refresh_token: None,
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
        // Refresh tokens: 30 days unless set, an hour to a year.
        assert_eq!(
            AuthSettings::with_realm_per_request().refresh_ttl,
            Duration::from_secs(2_592_000)
        );
        let refresh = |v: &str| {
            let v = v.to_string();
            AuthSettings::from_lookup(move |n| {
                (n == "QUAYSIDE_AUTH_REFRESH_SECONDS").then(|| v.clone())
            })
        };
        assert_eq!(
            refresh("86400").unwrap().refresh_ttl,
            Duration::from_secs(86400)
        );
        for bad in ["60", "31536001", "-1", "a day"] {
            assert!(refresh(bad).is_err(), "{bad}");
        }
    }
}
