//! The gate in front of every route, and the token service's handler (`GET /v2/auth`, and
//! `POST /v2/auth`: the OAuth2 form, which containerd and docker try first).
//!
//! Each [`super::Route`] declares the [`Access`] it needs; [`super::Route::serve`] runs
//! `check` before the handler, so no handler can forget it. The gate parses the
//! repository of the path once, checks the token against that name, and hands the very
//! same [`RepositoryName`] to the handler (see `super::repository`).
//!
//! | no token, or a bad one | `401 UNAUTHORIZED`, `WWW-Authenticate: Bearer realm,service,scope[,error="invalid_token"]` |
//! |---|---|
//! | a valid token without the right | `403 DENIED`, `WWW-Authenticate: …,error="insufficient_scope"` (RFC 6750 §3.1) |
//! | a mount from a repository the token cannot pull | the mount is dropped: a plain upload session (`202`), as the spec's fallback |
//!
//! May call: `auth` (scopes, the verifier, the token service), `registry`, the domain
//! types and `http` helpers. Nothing of storage.

use super::{error_response, header, query, response};
use crate::auth::scope::{self, Action, Needed, ResourceActions};
use crate::auth::{Auth, Grant, IssuedToken, TOKEN_PATH};
use crate::error::{ErrorCode, RegistryError};
use crate::names::RepositoryName;
use crate::registry::Registry;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

/// What a route needs of the caller's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The token service itself: no token (it checks credentials).
    TokenService,
    /// Any valid token, anonymous ones too (`GET /v2/`, where clients discover the realm).
    AnyToken,
    /// `registry:catalog:*`; the catalog then lists what the caller may pull.
    Catalog,
    /// An action on the repository of the path.
    Repository(Action),
    /// Push on the repository of the path; a cross-repository mount also needs pull on
    /// its `from`, else it is dropped and the request opens a plain upload.
    PushOrMount,
    /// A request on an upload session (`{uuid}` in the path): push on the repository of the
    /// path, or the session's capability in the query ([`UPLOAD_CAPABILITY`]), which stands
    /// for the token of whoever opened it (clients drop `Authorization` on another host).
    UploadSession,
}

/// The URL of the registry's API that opened a session, from its capability: where a
/// session continued on the upload service sends the client when the blob is stored.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "blobs"), allow(dead_code))] // read by the blob handlers only
pub(crate) struct RegistryOrigin(pub String);

/// The query parameter of an upload session's URL that carries its capability (see
/// `auth::token::UploadClaims`).
pub const UPLOAD_CAPABILITY: &str = "_upload";

/// The caller, once its token checked out: in the request's extensions for handlers that
/// answer differently by caller (the catalog).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal's name; `None` for an anonymous token.
    pub subject: Option<String>,
    pub access: Vec<ResourceActions>,
}

/// The repository the gate parsed (and checked, when auth is on), in the request's
/// extensions: [`super::repository`] returns it, so a handler works on the very name that
/// was authorized.
#[derive(Clone, Debug)]
pub(crate) struct CheckedRepository(pub RepositoryName);

/// Checks `req` against `access`: the request to hand to the handler, or the answer.
pub(crate) async fn check(
    access: Access,
    registry: &Registry,
    mut req: Request,
) -> Result<Request, Response<Body>> {
    let method = req.method().clone();
    // The path's repository, parsed once. An invalid name is 400 to anyone: the grammar is
    // public, and no name that fails it is ever granted.
    let repo = match access {
        Access::Repository(_) | Access::PushOrMount | Access::UploadSession => {
            match super::repository(&req) {
                Ok(repo) => Some(repo),
                Err(e) => return Err(error_response(&e, &method)),
            }
        }
        _ => None,
    };
    if let Some(repo) = &repo {
        req.extensions_mut().insert(CheckedRepository(repo.clone()));
    }
    let Some(auth) = registry.auth.as_deref() else {
        return Ok(req);
    };
    let needed = match (access, &repo) {
        (Access::TokenService, _) => return Ok(req),
        (Access::AnyToken, _) => None,
        (Access::Catalog, _) => Some(Needed::Catalog),
        (Access::Repository(action), Some(repo)) => Some(Needed::Repository(repo, action)),
        (Access::PushOrMount, Some(repo)) => Some(Needed::Repository(repo, Action::Push)),
        (Access::UploadSession, Some(repo)) => {
            if let Some(capability) = query(&req, UPLOAD_CAPABILITY) {
                return with_capability(auth, registry, req, repo, &capability).await;
            }
            Some(Needed::Repository(repo, Action::Push))
        }
        // A repository route always has its name parsed above.
        (Access::Repository(_) | Access::PushOrMount | Access::UploadSession, None) => {
            return Err(error_response(
                &RegistryError::internal("a repository route without a repository"),
                &method,
            ));
        }
    };
    let Some(token) = bearer(&req) else {
        return Err(unauthorized(auth, &req, needed.as_ref(), None));
    };
    let verifier = match registry.token_verifier(auth).await {
        Ok(verifier) => verifier,
        Err(e) => return Err(error_response(&RegistryError::internal(e), &method)),
    };
    let claims = match verifier.verify(token) {
        Ok(claims) => claims,
        Err(e) => {
            tracing::info!(target: "quayside::audit", action = "token_refused", reason = %e);
            return Err(unauthorized(
                auth,
                &req,
                needed.as_ref(),
                Some("invalid_token"),
            ));
        }
    };
    if let Some(needed) = &needed
        && !scope::allows(&claims.access, needed)
    {
        let subject = Some(claims.sub.as_str()).filter(|s| !s.is_empty());
        match registry.could_grant(auth, subject, needed).await {
            // A token for another request (clients cache them): ask for a new one.
            Ok(true) => {
                return Err(unauthorized(
                    auth,
                    &req,
                    Some(needed),
                    Some("insufficient_scope"),
                ));
            }
            Ok(false) => {}
            Err(e) => return Err(error_response(&RegistryError::internal(e), &method)),
        }
        tracing::info!(
            target: "quayside::audit",
            action = "access_denied",
            principal = %claims.sub,
            needed = %scope::challenge_scope(needed),
        );
        return Err(denied(auth, &req, needed));
    }
    if access == Access::PushOrMount {
        // A mount whose source the token cannot read, though a new token could: ask for
        // one (the challenge names the source too), rather than turn it into an upload.
        if let Some(from) = unreadable_mount_source(&req, &claims.access) {
            let subject = Some(claims.sub.as_str()).filter(|s| !s.is_empty());
            let source = Needed::Repository(&from, Action::Pull);
            match registry.could_grant(auth, subject, &source).await {
                Ok(true) => {
                    return Err(unauthorized(
                        auth,
                        &req,
                        needed.as_ref(),
                        Some("insufficient_scope"),
                    ));
                }
                Ok(false) => {}
                Err(e) => return Err(error_response(&RegistryError::internal(e), &method)),
            }
        }
        refuse_unreadable_mount(&mut req, &claims.access);
    }
    req.extensions_mut().insert(Caller {
        subject: Some(claims.sub).filter(|s| !s.is_empty()),
        access: claims.access,
    });
    Ok(req)
}

/// An upload session's request that carries a capability: let through as the principal
/// that opened the session if the capability is for this very session, else `401
/// invalid_token` (no bearer token is tried instead: a capability that does not check out
/// is an attempt, not a mistake).
async fn with_capability(
    auth: &Auth,
    registry: &Registry,
    mut req: Request,
    repo: &RepositoryName,
    capability: &str,
) -> Result<Request, Response<Body>> {
    let method = req.method().clone();
    let needed = Needed::Repository(repo, Action::Push);
    let upload = match super::path_parameter(&req, "uuid") {
        Ok(upload) => upload,
        Err(e) => return Err(error_response(&e, &method)),
    };
    let claims = match registry
        .check_upload_capability(auth, capability, repo, &upload)
        .await
    {
        Ok(Ok(claims)) => claims,
        Ok(Err(e)) => {
            tracing::info!(target: "quayside::audit", action = "capability_refused", reason = %e);
            return Err(unauthorized(
                auth,
                &req,
                Some(&needed),
                Some("invalid_token"),
            ));
        }
        Err(e) => return Err(error_response(&RegistryError::internal(e), &method)),
    };
    if !claims.registry.is_empty() {
        req.extensions_mut()
            .insert(RegistryOrigin(claims.registry.clone()));
    }
    req.extensions_mut().insert(Caller {
        subject: Some(claims.sub).filter(|s| !s.is_empty()),
        access: vec![ResourceActions::repository(
            repo,
            &[Action::Pull, Action::Push].into(),
        )],
    });
    Ok(req)
}

/// A cross-repository mount the gate refused: the caller may not pull its source. The
/// start-upload handler then opens a plain upload session, the spec's fallback. (A `from`
/// that is not a valid name is left for the handler to refuse, `NAME_INVALID`.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct MountRefused;

/// The source of a mount (`?mount=&from=`) that `access` does not let the caller pull.
fn unreadable_mount_source(req: &Request, access: &[ResourceActions]) -> Option<RepositoryName> {
    query(req, "mount")?;
    let from = RepositoryName::parse(&query(req, "from")?).ok()?;
    (!scope::allows(access, &Needed::Repository(&from, Action::Pull))).then_some(from)
}

fn refuse_unreadable_mount(req: &mut Request, access: &[ResourceActions]) {
    let Some(from) = unreadable_mount_source(req, access) else {
        return;
    };
    tracing::info!(
        target: "quayside::audit",
        action = "mount_refused",
        from = %from,
        "the caller may not pull the mount's source: a plain upload instead"
    );
    req.extensions_mut().insert(MountRefused);
}

/// The bearer token of `Authorization`, if there is exactly one such header.
fn bearer(req: &Request) -> Option<&str> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `Bearer realm="…",service="…"[,scope="…"][,error="…"]`.
fn challenge(
    auth: &Auth,
    req: &Request,
    needed: Option<&Needed<'_>>,
    error: Option<&str>,
) -> String {
    let quoted = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut value = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        quoted(&realm(auth, req)),
        quoted(&auth.settings.service)
    );
    if let Some(needed) = needed {
        let mut scopes = scope::challenge_scope(needed);
        // A mount reads its source too: ask for both, as distribution does, so that the
        // client's token lets the mount happen (else it becomes an upload).
        if req.method() == http::Method::POST
            && query(req, "mount").is_some()
            && let Some(from) = query(req, "from").and_then(|f| RepositoryName::parse(&f).ok())
        {
            scopes.push(' ');
            scopes.push_str(&scope::challenge_scope(&Needed::Repository(
                &from,
                Action::Pull,
            )));
        }
        value.push_str(&format!(",scope=\"{}\"", quoted(&scopes)));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    value
}

/// The token service's URL for a challenge: the configured realm, else this API's own
/// [`api_base`] and `/v2/auth`.
fn realm(auth: &Auth, req: &Request) -> String {
    match &auth.settings.realm {
        Some(realm) => realm.clone(),
        None => format!("{}{TOKEN_PATH}", api_base(req)),
    }
}

/// This API's own URL, `<scheme>://<domain>[/<stage>]`, from what API Gateway puts in the
/// event (`requestContext.domainName` and `stage`, the scheme from `X-Forwarded-Proto`) or,
/// outside API Gateway, the `Host` header. A deployment cannot write its API's URL into its
/// functions' environment: the API names the functions, so that is a circular dependency.
pub(crate) fn api_base(req: &Request) -> String {
    let (domain, stage) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.domain_name.clone(), ctx.stage.clone()),
        _ => (None, None),
    };
    // A host name and port only: anything else would not be a URL of ours.
    let is_host = |h: &String| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    let host = domain
        .filter(is_host)
        .or_else(|| {
            header(req, http::header::HOST)
                .map(str::to_string)
                .filter(is_host)
        })
        .unwrap_or_else(|| "localhost".to_string());
    let scheme = match header(req, "x-forwarded-proto") {
        Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
        _ => "https",
    };
    let stage = stage
        .filter(|s| s != "$default" && !s.is_empty())
        .map(|s| {
            format!(
                "/{}",
                form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    format!("{scheme}://{host}{stage}")
}

/// distribution's detail of an auth error: the access the request needs.
fn detail(needed: Option<&Needed<'_>>) -> serde_json::Value {
    match needed {
        Some(Needed::Repository(repo, action)) => {
            json!([{ "Type": "repository", "Name": repo.as_str(), "Action": action.as_str() }])
        }
        Some(Needed::Catalog) => json!([{ "Type": "registry", "Name": "catalog", "Action": "*" }]),
        None => json!(null),
    }
}

fn with_challenge(mut response: Response<Body>, challenge: String) -> Response<Body> {
    if let Ok(value) = challenge.parse() {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

fn unauthorized(
    auth: &Auth,
    req: &Request,
    needed: Option<&Needed<'_>>,
    error: Option<&str>,
) -> Response<Body> {
    let mut e = RegistryError::new(ErrorCode::Unauthorized, "authentication required");
    if needed.is_some() {
        e = e.with_detail(detail(needed));
    }
    with_challenge(
        error_response(&e, req.method()),
        challenge(auth, req, needed, error),
    )
}

fn denied(auth: &Auth, req: &Request, needed: &Needed<'_>) -> Response<Body> {
    let e = RegistryError::new(
        ErrorCode::Denied,
        "requested access to the resource is denied",
    )
    .with_detail(detail(Some(needed)));
    with_challenge(
        error_response(&e, req.method()),
        challenge(auth, req, Some(needed), Some("insufficient_scope")),
    )
}

/// The token service, both forms (the route's methods): `GET` as distribution's
/// `token.md`, `POST` as its `oauth.md`. Wrong credentials, or a refresh token that does
/// not check out: `401` with a Basic challenge, whichever form.
pub async fn token(registry: &Registry, req: Request) -> Response<Body> {
    let method = req.method().clone();
    let result = if method == http::Method::POST {
        oauth_token(registry, req).await
    } else {
        get_token(registry, req).await
    };
    match result {
        Ok(response) => response,
        Err(e) if e.code == ErrorCode::Unauthorized => {
            let service = registry
                .auth
                .as_deref()
                .map(|a| a.settings.service.as_str())
                .unwrap_or("quayside");
            with_challenge(
                error_response(&e, &method),
                format!("Basic realm=\"{}\"", service.replace('"', "")),
            )
        }
        Err(e) => error_response(&e, &method),
    }
}

/// A `service` other than ours: `400 DENIED` (the tokens would be for another registry).
fn check_service(registry: &Registry, asked: Option<&str>) -> Result<(), RegistryError> {
    let service = registry
        .auth
        .as_deref()
        .map(|a| a.settings.service.as_str());
    if let (Some(asked), Some(ours)) = (asked, service)
        && asked != ours
    {
        return Err(RegistryError::new(
            ErrorCode::Denied,
            format!("this token service issues tokens for service {ours:?} only"),
        )
        .with_status(400));
    }
    Ok(())
}

/// A bad parameter of a token request: `400 UNSUPPORTED` (distribution's token server
/// answers its own `UNSUPPORTED_VALUE`/`MISSING_REQUIRED_FIELD`, 400, which are not codes
/// of the spec).
fn bad_parameter(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::Unsupported, message).with_status(400)
}

/// The most bytes of form a token request may send: a few dozen scopes, a name, a secret
/// or a refresh token fit many times over.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// `GET /v2/auth?service=&scope=…[&offline_token=true]`: HTTP Basic credentials (or none:
/// anonymous) in, a token with the subset of the asked scopes the caller holds out
/// (`token`, `access_token`, `expires_in`, `issued_at`, and `refresh_token` when
/// `offline_token` is true and the caller signed in).
async fn get_token(registry: &Registry, req: Request) -> Result<Response<Body>, RegistryError> {
    check_service(registry, query(&req, "service").as_deref())?;
    let offline = match query(&req, "offline_token") {
        None => false,
        // Go's strconv.ParseBool, which distribution's token server and clients use.
        Some(value) => match value.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => false,
            other => {
                return Err(bad_parameter(format!(
                    "offline_token={other:?} is no boolean"
                )));
            }
        },
    };
    let credentials = basic_credentials(&req)?;
    let scopes: Vec<String> = req
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let requested = scope::parse_scopes(scopes.iter().map(String::as_str));
    let issued = registry
        .issue_token_for(
            Grant::Password(credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))),
            &requested,
            offline,
        )
        .await?;
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    });
    if let Some(refresh) = &issued.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    token_response(body)
}

/// `POST /v2/auth`, a form (`application/x-www-form-urlencoded`) as distribution's
/// `oauth.md` and its token server take it: `grant_type` (`password` with `username` and
/// `password`, or `refresh_token` with `refresh_token`), `service` and `client_id` (both
/// required), `access_type` (`online`, the default, or `offline`: a refresh token too) and
/// `scope` (space-separated scopes). The answer: `access_token`, `scope` (what was granted,
/// space-separated), `expires_in`, `issued_at`, and `refresh_token` on `offline` or a
/// refresh grant (the same token: the spec gives no new one). A missing or unknown field is
/// `400`; a wrong name or secret, or a refresh token that does not check out, `401`.
async fn oauth_token(registry: &Registry, req: Request) -> Result<Response<Body>, RegistryError> {
    let is_form = header(&req, CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(bad_parameter(
            "a token request by POST is a form: Content-Type application/x-www-form-urlencoded",
        ));
    }
    let body = super::body_bytes(req.into_body());
    if body.len() > MAX_FORM_BYTES {
        return Err(bad_parameter(format!(
            "a token request's form is at most {MAX_FORM_BYTES} bytes"
        )));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // The first value of a field, as Go's PostFormValue; an empty one counts as none.
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| field(name).ok_or_else(|| bad_parameter(format!("missing {name}")));
    let grant_type = required("grant_type")?;
    check_service(registry, Some(required("service")?))?;
    // Only for the audit log: the spec asks every client to name itself.
    let client_id = required("client_id")?;
    let offline = match field("access_type") {
        None | Some("online") => false,
        Some("offline") => true,
        Some(other) => return Err(bad_parameter(format!("unknown access_type {other:?}"))),
    };
    let grant = match grant_type {
        "password" => Grant::Password(Some((required("username")?, required("password")?))),
        "refresh_token" => Grant::RefreshToken(required("refresh_token")?),
        other => return Err(bad_parameter(format!("unknown grant_type {other:?}"))),
    };
    tracing::info!(target: "quayside::audit", action = "oauth_token", client_id, grant_type);
    let requested = scope::parse_scopes(
        form.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let issued = registry.issue_token_for(grant, &requested, offline).await?;
    let mut body = json!({
        "access_token": issued.token,
        "scope": granted_scope(&issued),
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    });
    if let Some(refresh) = &issued.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    token_response(body)
}

/// What a token grants in the scope grammar, space-separated: `repository:a/b:pull,push`.
fn granted_scope(issued: &IssuedToken) -> String {
    issued
        .claims
        .access
        .iter()
        .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A token service's JSON answer: never cached (it holds secrets).
fn token_response(body: serde_json::Value) -> Result<Response<Body>, RegistryError> {
    let body = body.to_string();
    response(StatusCode::OK)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .header(CACHE_CONTROL, "no-store")
        .body(Body::Text(body))
        .map_err(RegistryError::internal)
}

/// `Authorization: Basic base64(name:secret)`, if sent; another scheme counts as none.
/// Malformed Basic credentials are `401`, as wrong ones are.
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, RegistryError> {
    let Some(value) = header(req, AUTHORIZATION) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || RegistryError::new(ErrorCode::Unauthorized, "invalid username or password");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (name, secret) = text.split_once(':').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok(Some((name.to_string(), secret.to_string())))
}

/// The token service's path, for the route table.
pub(crate) const PATH: &str = TOKEN_PATH;
