//! What Slipway asks a registry directly, through the Distribution API: a tag's
//! manifest digest (base-image tracking), a manifest's type and size, and putting an
//! image index (multi-platform tags, which the engine cannot push).
//!
//! Registries on loopback are spoken to in plain HTTP, others in HTTPS, as the engine
//! does. Authentication follows the registry's challenge: `Basic` with the credential,
//! or `Bearer` with a token fetched from the realm it names.

use slipway_reference::Reference;

/// Every manifest type we read.
pub const ACCEPT: &str =
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, \
                          application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// The media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A username and password (or token) for one registry.
pub type Credential = Option<(String, String)>;

/// A manifest as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// The base URL of `reference`'s repository: `http://127.0.0.1:5000/v2/app`.
fn repository_url(r: &Reference) -> String {
    let host = if r.registry == slipway_reference::DOCKER_HUB {
        "registry-1.docker.io".to_string()
    } else {
        r.registry.clone()
    };
    let plain = slipway_reference::host::is_loopback(slipway_reference::host::without_port(&host));
    format!("{}://{host}/v2/{}", if plain { "http" } else { "https" }, r.repository)
}

/// `tag` or `digest` of the reference, as a manifest URL names it.
fn manifest_url(r: &Reference) -> String {
    format!(
        "{}/manifests/{}",
        repository_url(r),
        r.digest.clone().unwrap_or_else(|| r.tag().to_string())
    )
}

/// Sends the request built by `make`, once more with authorization when the registry
/// challenges the first one.
async fn send(
    client: &reqwest::Client,
    credential: Credential,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let resp = make().send().await.map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(resp);
    }
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let again = if challenge.to_ascii_lowercase().starts_with("basic") {
        let (u, p) = credential.ok_or("the registry asks for credentials and none were given")?;
        make().basic_auth(u, Some(p))
    } else {
        make().bearer_auth(bearer_token(client, &challenge, credential).await?)
    };
    again.send().await.map_err(|e| e.to_string())
}

async fn bearer_token(client: &reqwest::Client, challenge: &str, credential: Credential) -> Result<String, String> {
    let params: std::collections::HashMap<String, String> = challenge
        .trim_start_matches("Bearer ")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    let realm = params.get("realm").ok_or("the registry asked for auth without a token realm")?;
    let query: Vec<(&str, &String)> = ["service", "scope"]
        .iter()
        .filter_map(|k| params.get(*k).map(|v| (*k, v)))
        .collect();
    let mut req = client.get(realm).query(&query);
    if let Some((u, p)) = credential {
        req = req.basic_auth(u, Some(p));
    }
    let v: serde_json::Value = req
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    v.get("token")
        .or(v.get("access_token"))
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the token service gave no token".into())
}

/// `HEAD` of a manifest: its digest, media type and size.
pub async fn describe(client: &reqwest::Client, image: &str, credential: Credential) -> Result<Described, String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    let url = manifest_url(&r);
    let resp = send(client, credential, || client.head(&url).header("Accept", ACCEPT)).await?;
    if !resp.status().is_success() {
        return Err(format!("{url}: the registry answered {}", resp.status()));
    }
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(Described {
        digest: header("docker-content-digest").ok_or_else(|| format!("{url}: no Docker-Content-Digest"))?,
        media_type: header("content-type").unwrap_or_default(),
        size: header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0),
    })
}

/// A tag's manifest digest (`HEAD /v2/<name>/manifests/<tag>`).
pub async fn manifest_digest(client: &reqwest::Client, image: &str, credential: Credential) -> Result<String, String> {
    describe(client, image, credential).await.map(|d| d.digest)
}

/// A manifest's media type and body.
pub async fn manifest(client: &reqwest::Client, image: &str, credential: Credential) -> Result<(String, Vec<u8>), String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    let url = manifest_url(&r);
    let resp = send(client, credential, || client.get(&url).header("Accept", ACCEPT)).await?;
    if !resp.status().is_success() {
        return Err(format!("{url}: the registry answered {}", resp.status()));
    }
    let media_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((media_type, body.to_vec()))
}

/// The most of a manifest or an image config read from a registry: a hostile one
/// cannot fill the daemon's memory.
const MAX_DOCUMENT: usize = 4 << 20;

/// The most platform images of one index looked into.
const MAX_PLATFORMS: usize = 32;

/// The body of a successful answer, refused past `MAX_DOCUMENT` bytes.
async fn document(mut resp: reqwest::Response, url: &str) -> Result<serde_json::Value, String> {
    if !resp.status().is_success() {
        return Err(format!("{url}: the registry answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// Where a redirected blob answer sends its reader, when that is a named HTTPS host.
fn blob_location(resp: &reqwest::Response) -> Option<String> {
    if !resp.status().is_redirection() {
        return None;
    }
    let location = resp.headers().get("location")?.to_str().ok()?;
    let url = reqwest::Url::parse(location).ok()?;
    let host = url.host_str()?;
    let named = !host.starts_with('[') && host.parse::<std::net::IpAddr>().is_err();
    (url.scheme() == "https" && named).then(|| location.to_string())
}

/// The `ONBUILD` triggers of `image` (every platform's, for an index): what a build
/// from it runs that its own Dockerfile does not say.
pub async fn image_triggers(client: &reqwest::Client, image: &str, credential: Credential) -> Result<Vec<String>, String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    let get = |url: String| {
        let credential = credential.clone();
        async move {
            let resp = send(client, credential, || client.get(&url).header("Accept", ACCEPT)).await?;
            document(resp, &url).await
        }
    };
    let top = get(manifest_url(&r)).await?;
    let manifests: Vec<serde_json::Value> = match top["manifests"].as_array() {
        Some(list) => {
            let mut out = Vec::new();
            for m in list.iter().take(MAX_PLATFORMS) {
                let digest = m["digest"].as_str().ok_or("an index entry without a digest")?;
                out.push(get(format!("{}/manifests/{digest}", repository_url(&r))).await?);
            }
            out
        }
        None => vec![top],
    };
    let mut triggers = Vec::new();
    for m in manifests {
        let Some(config) = m["config"]["digest"].as_str() else { continue };
        let url = format!("{}/blobs/{config}", repository_url(&r));
        let resp = send(client, credential.clone(), || client.get(&url)).await?;
        let config = match blob_location(&resp) {
            // Registries hand blobs to a storage service by a redirect: followed once,
            // and only to a named HTTPS host (not to an address the registry picks).
            Some(location) => document(client.get(&location).send().await.map_err(|e| e.to_string())?, &location).await?,
            None => document(resp, &url).await?,
        };
        for t in config["config"]["OnBuild"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                triggers.push(t.to_string());
            }
        }
    }
    Ok(triggers)
}

/// One platform's image in an index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub manifest: Described,
    /// `os/arch[/variant]`.
    pub platform: String,
}

/// The OCI image index of `entries`.
pub fn index(entries: &[IndexEntry]) -> serde_json::Value {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut parts = e.platform.splitn(3, '/');
            let os = parts.next().unwrap_or("linux");
            let arch = parts.next().unwrap_or("");
            let mut platform = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = parts.next() {
                platform["variant"] = v.into();
            }
            serde_json::json!({
                "mediaType": e.manifest.media_type,
                "digest": e.manifest.digest,
                "size": e.manifest.size,
                "platform": platform,
            })
        })
        .collect();
    serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
}

/// Puts the image index of `entries` under `image`'s tag; returns its digest.
pub async fn put_index(client: &reqwest::Client, image: &str, entries: &[IndexEntry], credential: Credential) -> Result<String, String> {
    let r = Reference::parse(image).map_err(|e| e.to_string())?;
    let url = format!("{}/manifests/{}", repository_url(&r), r.tag());
    let body = serde_json::to_vec(&index(entries)).map_err(|e| e.to_string())?;
    let resp = send(client, credential, || {
        client.put(&url).header("Content-Type", OCI_INDEX).body(body.clone())
    })
    .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(format!(
            "{url}: the registry refused the image index ({status}): {}",
            text.chars().take(500).collect::<String>()
        ));
    }
    resp.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("{url}: no Docker-Content-Digest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_lists_each_platform() {
        let m = |d: &str| Described {
            digest: d.into(),
            media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
            size: 10,
        };
        let i = index(&[
            IndexEntry {
                manifest: m("sha256:a"),
                platform: "linux/amd64".into(),
            },
            IndexEntry {
                manifest: m("sha256:b"),
                platform: "linux/arm/v7".into(),
            },
        ]);
        assert_eq!(i["mediaType"], OCI_INDEX);
        assert_eq!(
            i["manifests"][0]["platform"],
            serde_json::json!({"os": "linux", "architecture": "amd64"})
        );
        assert_eq!(i["manifests"][1]["platform"]["variant"], "v7");
        assert_eq!(i["manifests"][1]["digest"], "sha256:b");
    }

    #[test]
    fn loopback_registries_are_plain_http() {
        let r = Reference::parse("127.0.0.1:5000/a/b:1").unwrap();
        assert_eq!(manifest_url(&r), "http://127.0.0.1:5000/v2/a/b/manifests/1");
        let digest = format!("sha256:{}", "0".repeat(64));
        let r = Reference::parse(&format!("reg.example/a@{digest}")).unwrap();
        assert_eq!(manifest_url(&r), format!("https://reg.example/v2/a/manifests/{digest}"));
    }
}
