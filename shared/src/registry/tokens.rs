//! The token service and what else of authentication needs the registry's stores and
//! signer: issuing tokens (`GET`/`POST /v2/auth`), upload-session capabilities, and the
//! catalog as a signed-in caller may see it. The rules themselves (who holds what, token
//! shapes) are `crate::auth`'s; this module applies them to the registry's ports.
//!
//! May call: `crate::auth`, the `ports` traits. Must not know HTTP or any backend.

use crate::auth::scope::Needed;
use crate::auth::token::{InvalidToken, UploadClaims, Verifier};
use crate::auth::{Action, Auth, AuthFailure, Grant, IssuedToken, Requested, held_actions};
use crate::error::{ErrorCode, RegistryError};
use crate::names::RepositoryName;
use crate::ports::StoreResult;
use crate::registry::{Page, PageRequest, Registry};
use std::sync::Arc;

impl Registry {
    /// The verifier of bearer tokens, with the signer's public key (fetched once).
    pub async fn token_verifier(&self, auth: &Auth) -> StoreResult<Arc<Verifier>> {
        auth.verifier(self.signer.as_ref()).await
    }

    /// Checks an upload session's capability: this session of this repository, signed by
    /// this registry, not expired.
    pub async fn check_upload_capability(
        &self,
        auth: &Auth,
        capability: &str,
        repo: &RepositoryName,
        upload: &str,
    ) -> StoreResult<Result<UploadClaims, InvalidToken>> {
        auth.check_upload(self.signer.as_ref(), capability, repo, upload)
            .await
    }

    /// Whether `subject` could be granted `needed` by a new token (what it holds now).
    pub async fn could_grant(
        &self,
        auth: &Auth,
        subject: Option<&str>,
        needed: &Needed<'_>,
    ) -> StoreResult<bool> {
        auth.could_grant(self.metadata.as_ref(), subject, needed)
            .await
    }

    /// A capability for upload session `upload` of `repo`, opened by `subject` through the
    /// API at `registry`; `None` where tokens are off (a session then needs none).
    pub async fn upload_capability(
        &self,
        subject: Option<&str>,
        repo: &RepositoryName,
        upload: &str,
        registry: &str,
    ) -> Result<Option<String>, RegistryError> {
        let Some(auth) = self.auth.as_deref() else {
            return Ok(None);
        };
        auth.issue_upload(self.signer.as_ref(), subject, repo, upload, registry)
            .await
            .map(Some)
            .map_err(RegistryError::from)
    }

    /// The token service: authenticates `credentials`, grants what the caller holds of
    /// `requested`, signs the token. `UNAUTHORIZED` for bad credentials.
    pub async fn issue_token(
        &self,
        credentials: Option<(&str, &str)>,
        requested: &[Requested],
    ) -> Result<IssuedToken, RegistryError> {
        self.issue_token_for(Grant::Password(credentials), requested, false)
            .await
    }

    /// The token service, every form: authenticates the `grant`, grants what the caller
    /// holds of `requested`, signs the token; with `offline`, adds a refresh token (see the
    /// module doc). A refresh grant answers the refresh token it came with. `UNAUTHORIZED`
    /// for bad credentials or a refresh token that does not check out, alike.
    pub async fn issue_token_for(
        &self,
        grant: Grant<'_>,
        requested: &[Requested],
        offline: bool,
    ) -> Result<IssuedToken, RegistryError> {
        let auth = self.auth_or_unsupported()?;
        let authenticated = match grant {
            Grant::Password(credentials) => auth.authenticate(credentials).await,
            Grant::RefreshToken(refresh) => {
                auth.authenticate_refresh(self.signer.as_ref(), refresh)
                    .await
            }
        };
        let principal = match authenticated {
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
        let mut issued = auth.issue(self.signer.as_ref(), &principal, access).await?;
        issued.refresh_token = match grant {
            Grant::RefreshToken(refresh) => Some(refresh.to_string()),
            Grant::Password(_) if offline => {
                auth.issue_refresh(self.signer.as_ref(), &principal).await?
            }
            Grant::Password(_) => None,
        };
        Ok(issued)
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
        let count = page.limit.clamp(50, 100);
        loop {
            let batch = self.metadata.repositories(cursor.as_deref(), count).await?;
            let repos: Vec<RepositoryName> = batch
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
            if batch.len() < count {
                return Ok(out);
            }
            cursor = batch.last().cloned();
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
