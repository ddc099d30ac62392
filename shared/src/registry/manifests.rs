//! Manifest operations: the seed's routes, checks and errors, as corrected in docs/seed.md.
//!
//! May call: the domain modules and the `ports` traits. Must not know HTTP or any backend.

// Without a blob store (feature `blobs` off) the operations reading one are compiled out;
// what only they use is unused there.
#![cfg_attr(not(feature = "blobs"), allow(unused_imports, dead_code))]

use crate::digest::{Algorithm, Digest};
use crate::error::{ErrorCode, RegistryError, Result};
use crate::manifest::accept::Accept;
use crate::manifest::schema1::{self, SignedManifest};
use crate::manifest::schema1_builder::Schema1Builder;
use crate::manifest::{Content, Format, Manifest};
use crate::names::{Reference, RepositoryName, Tag};
use crate::ports::{
    GeneratedManifest, Lookup, ManifestDeletion, ManifestInUse, MetadataStore, Push, Referrer,
    RegistryEvent, StoreError, StoredManifest, TagOnManifest, TagTarget, V1Image,
};
use bytes::Bytes;
use oci_spec::image::ImageIndex;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use super::Registry;

/// The platform a client that cannot read an index is given, as distribution does.
const DEFAULT_PLATFORM: (&str, &str) = ("linux", "amd64");

/// What a successful manifest PUT tells the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The manifest's `subject`, answered as `OCI-Subject` (OCI 1.1).
    pub subject: Option<Digest>,
    /// The tags of `tag` parameters the push applied, answered as `OCI-Tag`.
    pub tag_parameters: Vec<Tag>,
}

/// The most tags one push may apply (the reference's and its `tag` parameters): the spec
/// asks a registry to take at least 10; a DynamoDB transaction holds 100 items.
pub const MAX_TAGS_PER_PUSH: usize = 32;

/// How many times a manifest deletion is planned and tried while other writers keep moving
/// tags to or from the manifest.
const DELETE_ATTEMPTS: u32 = 8;

impl Registry {
    /// PUT of a manifest by tag or digest: checked against the reference and the repository,
    /// stored atomically with its tags and v1 images, announced as `repo_push`. The tags are
    /// the reference's (by tag) and `tag_parameters` (the OCI dev spec's `?tag=`, mostly with
    /// a push by digest), all in the push's one write. The digest is named in the
    /// reference's algorithm when pushed by digest, else in sha256: a push by tag has no
    /// other algorithm to go by (a client wanting sha512 pushes by digest, tags as
    /// parameters: what the spec's conformance suite does).
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        tag_parameters: &[Tag],
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<PushedManifest> {
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let manifest = Manifest::parse(content_type, body, algorithm)?;
        let tag = match reference {
            Reference::Tag(tag) => {
                if let Content::Schema1(signed) = &manifest.content
                    && signed.tag() != tag.as_str()
                {
                    return Err(RegistryError::new(
                        ErrorCode::TagInvalid,
                        format!(
                            "manifest tag {:?} does not match the reference {tag:?}",
                            signed.tag()
                        ),
                    ));
                }
                Some(tag.clone())
            }
            Reference::Digest(digest) => {
                if manifest.digest != *digest {
                    return Err(RegistryError::new(
                        ErrorCode::DigestInvalid,
                        format!(
                            "manifest digest is {}, not the reference {digest}",
                            manifest.digest
                        ),
                    ));
                }
                None
            }
        };

        // The reference's tag first, then each parameter once.
        let mut tags: Vec<Tag> = tag.iter().cloned().collect();
        for t in tag_parameters {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        if tags.len() > MAX_TAGS_PER_PUSH {
            return Err(RegistryError::new(
                ErrorCode::TagInvalid,
                format!("a push applies at most {MAX_TAGS_PER_PUSH} tags"),
            )
            .with_status(414));
        }
        if let Content::Schema1(signed) = &manifest.content
            && let Some(other) = tags.iter().find(|t| t.as_str() != signed.tag())
        {
            // A schema1 manifest names its tag inside its signed payload.
            return Err(RegistryError::new(
                ErrorCode::TagInvalid,
                format!(
                    "manifest tag {:?} does not match the tag {other:?}",
                    signed.tag()
                ),
            ));
        }

        let (images, tag_v1_image) = match &manifest.content {
            Content::Schema1(signed) => {
                let images = self.check_schema1(repo, &manifest, signed).await?;
                let leaf = signed.layers().first().map(|l| l.v1.id.clone());
                (images, leaf.filter(|_| !tags.is_empty()))
            }
            _ => {
                self.check_references(repo, &manifest).await?;
                (Vec::new(), None)
            }
        };

        let updated_tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let event = event(
            "repo_push",
            repo,
            updated_tags,
            Some(&manifest.digest),
            Some(manifest.media_type()),
        );
        let subject = manifest.subject();
        let stored = StoredManifest {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type().to_string(),
            body: manifest.body.clone(),
        };
        let push = Push {
            referrer: subject.as_ref().map(|s| Referrer {
                subject: s.digest.clone(),
                digest: stored.digest.clone(),
                media_type: stored.media_type.clone(),
                size: stored.body.len() as u64,
                artifact_type: s.artifact_type.clone(),
                annotations: s.annotations.clone(),
            }),
            manifest: stored,
            tags,
            tag_v1_image,
            images,
            event,
        };
        self.metadata.commit_push(repo, &push).await?;
        tracing::info!(
            target: "quayside::audit",
            action = "push_repo",
            repository = %repo,
            tags = ?push.event.updated_tags,
            digest = %manifest.digest,
            media_type = manifest.media_type(),
        );
        self.announce(&push.event).await;
        let mut applied = Vec::new();
        for t in tag_parameters {
            if !applied.contains(t) {
                applied.push(t.clone());
            }
        }
        Ok(PushedManifest {
            digest: manifest.digest,
            subject: subject.map(|s| s.digest),
            tag_parameters: applied,
        })
    }

    /// DELETE by digest (the manifest and the tags on it, but a v1 tag keeps its image chain)
    /// or by tag (that tag only).
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let event = match reference {
            Reference::Digest(digest) => match self.delete_by_digest(repo, digest).await? {
                Some(event) => event,
                None => return Err(self.not_found(repo, reference).await),
            },
            Reference::Tag(tag) => {
                let event = event("tag_delete", repo, vec![tag.to_string()], None, None);
                if !self.metadata.delete_tag(repo, tag, &event).await? {
                    return Err(self.not_found(repo, reference).await);
                }
                event
            }
        };
        tracing::info!(
            target: "quayside::audit",
            action = event.event,
            repository = %repo,
            reference = %reference,
            tags = ?event.updated_tags,
        );
        self.announce(&event).await;
        Ok(())
    }

    /// Deletes manifest `digest` as [`plan_deletion`] decides, again while other writers
    /// change the tags naming it meanwhile; its event, or `None` when it is unknown.
    async fn delete_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<RegistryEvent>> {
        for attempt in 0..DELETE_ATTEMPTS {
            let Some(read) = self.metadata.manifest_in_use(repo, digest).await? else {
                return Ok(None);
            };
            let images: Vec<String> = read
                .tags
                .iter()
                .filter_map(|t| t.v1_image.clone())
                .collect();
            // Images are never deleted: one read of theirs holds for the commit below.
            let stored = if images.is_empty() {
                HashMap::new()
            } else {
                let lookup = Lookup {
                    images,
                    ..Lookup::default()
                };
                self.metadata.lookup(repo, &lookup).await?.images
            };
            let event = event("manifest_delete", repo, Vec::new(), Some(digest), None);
            let deletion = plan_deletion(digest, read, |id| stored.contains_key(id), event);
            match self.metadata.commit_deletion(repo, &deletion).await {
                Ok(()) => return Ok(Some(deletion.event)),
                // A tag moved to or from the manifest since the read: read again.
                Err(StoreError::Conflict(_)) => crate::retry::backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!(
            "deleting {digest} from {repo} kept conflicting with other writers"
        ))
        .into())
    }

    /// The seed's schema1 checks: name, signature, layers, linked blobs, v1 parents. Returns
    /// the v1 images to synthesize, parents before children.
    async fn check_schema1(
        &self,
        repo: &RepositoryName,
        manifest: &Manifest,
        signed: &SignedManifest,
    ) -> Result<Vec<V1Image>> {
        if signed.name() != repo.as_str() {
            return Err(RegistryError::new(
                ErrorCode::NameInvalid,
                format!(
                    "manifest name {:?} does not match the repository {repo}",
                    signed.name()
                ),
            ));
        }
        signed.verify()?;
        if signed.layers().is_empty() {
            return Err(manifest_invalid("manifest does not reference any layers"));
        }
        let layers = signed.layers();
        let lookup = Lookup {
            blobs: manifest.blobs(),
            manifests: Vec::new(),
            images: layers
                .iter()
                .flat_map(|l| std::iter::once(&l.v1.id).chain(&l.v1.parent))
                .cloned()
                .collect(),
        };
        let found = self.metadata.lookup(repo, &lookup).await?;
        if let Some(missing) = lookup.blobs.iter().find(|d| !found.blobs.contains(d)) {
            return Err(blob_unknown(ErrorCode::BlobUnknown, missing));
        }
        // Base first, so that each parent is known before its child.
        let mut known: HashSet<&str> = found.images.keys().map(String::as_str).collect();
        let mut images = Vec::new();
        for layer in layers.iter().rev() {
            let v1 = &layer.v1;
            if known.contains(v1.id.as_str()) {
                continue;
            }
            if let Some(parent) = &v1.parent
                && !known.contains(parent.as_str())
            {
                return Err(manifest_invalid(format!(
                    "Parent not found with docker image id {parent}"
                ))
                .with_detail(json!({ "parent": parent })));
            }
            known.insert(&v1.id);
            images.push(V1Image {
                docker_id: v1.id.clone(),
                parent: v1.parent.clone(),
                blob: layer.blob_sum.clone(),
                created: v1.created.clone(),
                comment: v1.comment.clone(),
                command: v1.command.clone(),
                v1_json: layer.v1_json.clone(),
            });
        }
        Ok(images)
    }

    /// Schema2/OCI: config and layers must be linked blobs, an index's children manifests of
    /// the repository. One batched lookup.
    async fn check_references(&self, repo: &RepositoryName, manifest: &Manifest) -> Result<()> {
        let lookup = Lookup {
            blobs: manifest.blobs(),
            manifests: manifest.child_manifests(),
            images: Vec::new(),
        };
        if lookup.blobs.is_empty() && lookup.manifests.is_empty() {
            return Ok(());
        }
        let found = self.metadata.lookup(repo, &lookup).await?;
        if let Some(missing) = lookup.blobs.iter().find(|d| !found.blobs.contains(d)) {
            return Err(blob_unknown(ErrorCode::ManifestBlobUnknown, missing));
        }
        if let Some(missing) = lookup
            .manifests
            .iter()
            .find(|d| !found.manifests.contains(d))
        {
            return Err(RegistryError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest {missing} listed in the index is not in {repo}; push it first"),
            )
            .with_detail(json!({ "digest": missing.to_string() })));
        }
        Ok(())
    }

    /// `NAME_UNKNOWN` for a repository that does not exist, else `MANIFEST_UNKNOWN`. Only
    /// a miss pays for the second read.
    async fn not_found(&self, repo: &RepositoryName, reference: &Reference) -> RegistryError {
        match self.metadata.repository_exists(repo).await {
            Ok(false) => RegistryError::new(
                ErrorCode::NameUnknown,
                format!("repository {repo} is not known to the registry"),
            )
            .with_detail(json!({ "name": repo.as_str() })),
            Ok(true) => RegistryError::new(
                ErrorCode::ManifestUnknown,
                format!("manifest {reference} is not in {repo}"),
            )
            .with_detail(json!({ "reference": reference.to_string() })),
            Err(e) => e.into(),
        }
    }

    /// Publishes an event. The change is already stored, so a failure is logged, not
    /// answered: the client's push succeeded.
    async fn announce(&self, event: &RegistryEvent) {
        if let Err(e) = self.events.publish(event).await {
            tracing::error!(error = %e, event = ?event, "event not published");
        }
    }
}

// What reads or writes the blob store: only in a build that has one (see the module `registry`).
#[cfg(feature = "blobs")]
impl Registry {
    /// GET/HEAD of a manifest by tag or digest, negotiated against `accept`.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        accept: &Accept,
    ) -> Result<StoredManifest> {
        match reference {
            Reference::Digest(digest) => match self.metadata.manifest(repo, digest).await? {
                Some(manifest) => self.negotiate(repo, None, manifest, accept).await,
                None => Err(self.not_found(repo, reference).await),
            },
            Reference::Tag(tag) => match self.metadata.tag(repo, tag).await? {
                Some(TagTarget {
                    manifest: Some(manifest),
                    ..
                }) => self.negotiate(repo, Some(tag), manifest, accept).await,
                // The seed's path: a v1 tag whose manifest was deleted (or never pushed) is
                // served a manifest built and signed from its image chain.
                Some(TagTarget {
                    manifest: None,
                    v1_image: Some(leaf),
                }) => {
                    let manifest = self.generate_schema1(repo, tag, &leaf).await?;
                    self.negotiate(repo, Some(tag), manifest, accept).await
                }
                _ => Err(self.not_found(repo, reference).await),
            },
        }
    }

    /// Serves `manifest` if the client accepts its type. Otherwise, by tag: an index is
    /// replaced by its linux/amd64 manifest, and an image manifest is converted to signed
    /// schema1 for a client that asks for schema1 (as distribution 2.x and Quay do).
    async fn negotiate(
        &self,
        repo: &RepositoryName,
        tag: Option<&Tag>,
        manifest: StoredManifest,
        accept: &Accept,
    ) -> Result<StoredManifest> {
        let format = Format::from_media_type(&manifest.media_type);
        let allowed = |m: &StoredManifest, f: Option<Format>| {
            f.map_or_else(|| accept.allows(&m.media_type), |f| accept.allows_format(f))
        };
        if allowed(&manifest, format) {
            return Ok(manifest);
        }
        let refused = |m: &StoredManifest| {
            RegistryError::new(
                ErrorCode::ManifestUnknown,
                format!(
                    "the manifest is {}, which the request's Accept header does not allow",
                    m.media_type
                ),
            )
        };
        let Some(tag) = tag else {
            // A digest names these exact bytes: serving another form would break it.
            return Err(refused(&manifest));
        };
        let image = match format {
            Some(Format::ManifestList | Format::OciIndex) => {
                match self.default_platform_child(repo, &manifest).await? {
                    Some(child) => child,
                    None => return Err(refused(&manifest)),
                }
            }
            _ => manifest,
        };
        let image_format = Format::from_media_type(&image.media_type);
        if allowed(&image, image_format) {
            return Ok(image);
        }
        match image_format {
            Some(Format::Schema2 | Format::OciManifest) if accept.names_schema1() => {
                // An image that cannot be converted (a config without history, say) is
                // still one the client did not accept: 404, as distribution answers an OCI
                // image to a schema1-only client, never a 400 to a GET whose request was fine.
                self.convert_to_schema1(repo, tag, &image)
                    .await
                    .map_err(|e| match e.code {
                        ErrorCode::ManifestInvalid => {
                            let refused = refused(&image);
                            let message = format!(
                                "{}, and it has no schema1 form: {}",
                                refused.message, e.message
                            );
                            RegistryError::new(ErrorCode::ManifestUnknown, message)
                        }
                        _ => e,
                    })
            }
            _ => Err(refused(&image)),
        }
    }

    /// The linux/amd64 manifest of an index, if the index has one and the repository holds it.
    async fn default_platform_child(
        &self,
        repo: &RepositoryName,
        index: &StoredManifest,
    ) -> Result<Option<StoredManifest>> {
        let Ok(parsed) = serde_json::from_slice::<ImageIndex>(&index.body) else {
            return Ok(None);
        };
        let (os, arch) = DEFAULT_PLATFORM;
        let child = parsed.manifests().iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
        });
        let Some(digest) = child.and_then(|d| d.digest().to_string().parse::<Digest>().ok()) else {
            return Ok(None);
        };
        Ok(self.metadata.manifest(repo, &digest).await?)
    }

    /// distribution's schema2 → schema1 conversion, signed with the registry's key. Not
    /// stored: the payload is deterministic, so the digest is the same each time.
    async fn convert_to_schema1(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        image: &StoredManifest,
    ) -> Result<StoredManifest> {
        let parsed = Manifest::parse(
            Some(&image.media_type),
            image.body.clone(),
            Algorithm::Sha256,
        )?;
        let Content::Image(im) = &parsed.content else {
            return Err(RegistryError::internal(
                "conversion of a non-image manifest",
            ));
        };
        let config_digest: Digest = im
            .config()
            .digest()
            .to_string()
            .parse()
            .map_err(RegistryError::internal)?;
        let layers = im
            .layers()
            .iter()
            .map(|l| l.digest().to_string().parse::<Digest>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(RegistryError::internal)?;
        let config = self.blobs.get(&config_digest).await?.ok_or_else(|| {
            RegistryError::internal(format!("config blob {config_digest} of {repo} is missing"))
        })?;
        let builder =
            Schema1Builder::from_image_config(repo.as_str(), tag.as_str(), &config, &layers)?;
        let signed = builder.build(self.signer.as_ref()).await?;
        Ok(schema1_record(&signed))
    }

    /// The seed's `_generate_and_store_manifest`: a schema1 manifest built from the tag's v1
    /// image chain, signed, stored with the tag, returned.
    async fn generate_schema1(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        leaf: &str,
    ) -> Result<StoredManifest> {
        let chain = image_chain(self.metadata.as_ref(), repo, leaf).await?;
        let complete = chain.last().is_some_and(|base| base.parent.is_none());
        if !complete {
            tracing::warn!(repository = %repo, %tag, leaf, "v1 image chain is incomplete");
            return Err(self.not_found(repo, &Reference::Tag(tag.clone())).await);
        }
        let architecture = serde_json::from_str::<serde_json::Value>(&chain[0].v1_json)
            .ok()
            .and_then(|v| v.get("architecture")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "amd64".to_string());
        let mut builder = Schema1Builder::new(repo.as_str(), tag.as_str(), &architecture);
        for image in &chain {
            builder.add_layer(image.blob.clone(), image.v1_json.clone());
        }
        let manifest = schema1_record(&builder.build(self.signer.as_ref()).await?);
        match self
            .metadata
            .attach_generated_manifest(
                repo,
                GeneratedManifest {
                    tag,
                    v1_image: leaf,
                    manifest: &manifest,
                },
            )
            .await
        {
            Ok(()) => Ok(manifest),
            // Another request stored one first, or the tag moved: serve what it has now.
            Err(StoreError::Conflict(_)) => match self.metadata.tag(repo, tag).await? {
                Some(TagTarget {
                    manifest: Some(current),
                    ..
                }) => Ok(current),
                _ => Err(self.not_found(repo, &Reference::Tag(tag.clone())).await),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// What deleting a manifest does to the tags naming it, decided here for every store: a
/// schema1 tag whose v1 image is stored stays, without a manifest (the next `GET` by tag
/// builds one from the image chain, as the seed did: docs/seed.md); any other tag goes, and
/// so does a schema1 tag whose image is missing, for which nothing could be built. The
/// event's `updated_tags` are the tags that go.
fn plan_deletion(
    digest: &Digest,
    read: ManifestInUse,
    image_stored: impl Fn(&str) -> bool,
    mut event: RegistryEvent,
) -> ManifestDeletion {
    let (kept, removed): (Vec<&TagOnManifest>, Vec<&TagOnManifest>) = read
        .tags
        .iter()
        .partition(|t| t.v1_image.as_deref().is_some_and(&image_stored));
    event.updated_tags = removed.iter().map(|t| t.tag.to_string()).collect();
    ManifestDeletion {
        digest: digest.clone(),
        kept_tags: kept.into_iter().map(|t| t.tag.clone()).collect(),
        read,
        event,
    }
}

/// An event of `repo`, now.
fn event(
    kind: &str,
    repo: &RepositoryName,
    updated_tags: Vec<String>,
    digest: Option<&Digest>,
    media_type: Option<&str>,
) -> RegistryEvent {
    RegistryEvent {
        event: kind.to_string(),
        repository: repo.to_string(),
        namespace: repo.namespace().to_string(),
        updated_tags,
        digest: digest.map(|d| d.to_string()),
        media_type: media_type.map(str::to_string),
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
    }
}

fn schema1_record(signed: &SignedManifest) -> StoredManifest {
    StoredManifest {
        digest: signed.digest().clone(),
        media_type: schema1::MEDIA_TYPE_SIGNED.to_string(),
        body: Bytes::copy_from_slice(signed.bytes()),
    }
}

fn manifest_invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestInvalid, message)
}

fn blob_unknown(code: ErrorCode, digest: &Digest) -> RegistryError {
    RegistryError::new(
        code,
        format!("blob {digest} is not in the repository; push it first"),
    )
    .with_detail(json!({ "digest": digest.to_string() }))
}

/// The v1 image `leaf` of `repo` and its ancestors, leaf first: one read per image. Empty
/// when `leaf` is unknown; stops where a parent is missing. Parents come from
/// client-supplied v1 JSON, so a cycle is possible: the walk stops at the first id seen
/// twice.
pub async fn image_chain(
    metadata: &dyn MetadataStore,
    repo: &RepositoryName,
    leaf: &str,
) -> crate::ports::StoreResult<Vec<V1Image>> {
    let mut chain: Vec<V1Image> = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(leaf.to_string());
    while let Some(id) = next {
        if !seen.insert(id.clone()) {
            break;
        }
        let Some(image) = metadata.image(repo, &id).await? else {
            break;
        };
        next = image.parent.clone();
        chain.push(image);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(tag: &str, v1_image: Option<&str>) -> TagOnManifest {
        TagOnManifest {
            tag: Tag::parse(tag).unwrap(),
            v1_image: v1_image.map(str::to_string),
        }
    }

    #[test]
    fn a_deletion_keeps_only_schema1_tags_whose_image_is_stored() {
        let digest = Digest::sha256(b"m");
        let repo = RepositoryName::parse("library/app").unwrap();
        let read = ManifestInUse {
            subject: None,
            tags: vec![
                on("missing", Some("gone")),
                on("old", Some("leaf")),
                on("plain", None),
            ],
            mark: Some(3),
        };
        let event = event("manifest_delete", &repo, Vec::new(), Some(&digest), None);
        let deletion = plan_deletion(&digest, read.clone(), |id| id == "leaf", event);
        assert_eq!(deletion.kept_tags, [Tag::parse("old").unwrap()]);
        assert_eq!(deletion.event.updated_tags, ["missing", "plain"]);
        assert_eq!(deletion.read, read, "the read stays the precondition");
        let fates: Vec<(String, Option<&str>)> = deletion
            .tag_fates()
            .map(|(t, kept)| (t.to_string(), kept))
            .collect();
        assert_eq!(
            fates,
            [
                ("missing".to_string(), None),
                ("old".to_string(), Some("leaf")),
                ("plain".to_string(), None)
            ]
        );
    }
}
