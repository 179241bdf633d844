//! Where a daemon keeps blobs: uploaded contexts (`uploads/<id>.tar.gz`) and finished
//! run logs (`logs/<run>.log`). One machine keeps them in its data dir, at the paths it
//! always had; a fleet shares an object store (`azure://container`, `s3://bucket`,
//! `gs://bucket`) through `object_store`, so any node can build what another received
//! and serve what another ran.
//!
//! Credentials come with the store's options (`azure_storage_account_key`, …) or the
//! environment variables `object_store` reads (`AZURE_STORAGE_ACCOUNT_NAME`, …); they
//! never appear in errors, which name the key and the store's scheme and container only.

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store {store:?} is not usable: {message}")]
    Config { store: String, message: String },
    #[error("blob {key} in {store}: {message}")]
    Io { store: String, key: String, message: String },
}

/// A blob store.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// What errors call the store: `data dir`, or the URL without credentials.
    name: String,
    shared: bool,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("name", &self.name)
            .field("shared", &self.shared)
            .finish()
    }
}

impl Blobs {
    /// Blobs in `dir`, at `dir/<key>`.
    pub fn local(dir: &Path) -> Result<Blobs, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Config {
            store: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| BlobError::Config {
            store: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Blobs {
            store: Arc::new(store),
            name: "the data dir".into(),
            shared: false,
        })
    }

    /// The object store at `url` (`azure://container`, `s3://bucket`, `gs://bucket`),
    /// with `options` (`object_store`'s configuration keys, e.g. `azure_storage_account_name`,
    /// `azure_storage_use_emulator`) over what the environment gives.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Blobs, BlobError> {
        let parsed = url::Url::parse(url).map_err(|e| BlobError::Config {
            store: redact(url),
            message: e.to_string(),
        })?;
        let scheme = parsed.scheme();
        let bad = |message: String| BlobError::Config {
            store: redact(url),
            message,
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            "azure" | "az" | "abfs" | "abfss" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url);
                for (k, v) in options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url);
                for (k, v) in options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "gs" => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url);
                for (k, v) in options {
                    let key = k.parse().map_err(|e: object_store::Error| bad(format!("option {k}: {e}")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?}: use azure://CONTAINER, s3://BUCKET or gs://BUCKET (memory:// for tests)"
                )))
            }
        };
        Ok(Blobs {
            store,
            name: redact(url),
            shared: true,
        })
    }

    /// Whether other machines see these blobs (an object store) or only this one.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    fn io(&self, key: &str, e: impl std::fmt::Display) -> BlobError {
        BlobError::Io {
            store: self.name.clone(),
            key: key.to_string(),
            message: e.to_string(),
        }
    }

    /// Stores the file at `path` under `key`, in parts, never whole in memory.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), BlobError> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| self.io(key, e))?;
        let mut upload = self.store.put_multipart(&Key::from(key)).await.map_err(|e| self.io(key, e))?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = fill(&mut file, &mut buf).await.map_err(|e| self.io(key, e))?;
            if n == 0 {
                break;
            }
            if let Err(e) = upload.put_part(PutPayload::from(Bytes::copy_from_slice(&buf[..n]))).await {
                let _ = upload.abort().await;
                return Err(self.io(key, e));
            }
        }
        upload.complete().await.map_err(|e| self.io(key, e))?;
        Ok(())
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&Key::from(key), PutPayload::from(bytes))
            .await
            .map_err(|e| self.io(key, e))?;
        Ok(())
    }

    /// Writes the blob `key` to `path` (through a temporary file beside it); `false`
    /// when there is no such blob.
    pub async fn fetch_to_file(&self, key: &str, path: &Path) -> Result<bool, BlobError> {
        let got = match self.store.get(&Key::from(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.io(key, e)),
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| self.io(key, e))?;
        }
        let part = path.with_extension("fetching");
        let mut out = tokio::fs::File::create(&part).await.map_err(|e| self.io(key, e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(|e| self.io(key, e))?)
                .await
                .map_err(|e| self.io(key, e))?;
        }
        out.flush().await.map_err(|e| self.io(key, e))?;
        tokio::fs::rename(&part, path).await.map_err(|e| self.io(key, e))?;
        Ok(true)
    }

    /// Up to `max` bytes of blob `key` from `offset`; `None` when there is no such blob.
    pub async fn read_from(&self, key: &str, offset: u64, max: u64) -> Result<Option<Bytes>, BlobError> {
        let k = Key::from(key);
        let size = match self.store.head(&k).await {
            Ok(m) => m.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.io(key, e)),
        };
        if offset >= size {
            return Ok(Some(Bytes::new()));
        }
        let end = size.min(offset.saturating_add(max));
        self.store.get_range(&k, offset..end).await.map(Some).map_err(|e| self.io(key, e))
    }

    /// Whether blob `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.store.head(&Key::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.io(key, e)),
        }
    }

    /// Removes blob `key`; a missing one is fine.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io(key, e)),
        }
    }
}

async fn fill(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut n = 0;
    while n < buf.len() {
        let got = file.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// The URL without user information or query (where credentials could be).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(an unreadable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_blobs_live_at_their_paths_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let b = Blobs::local(dir.path()).unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        b.put_file("uploads/a.tar.gz", &src).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("uploads/a.tar.gz")).unwrap().len(), 100_000);
        assert_eq!(b.read_from("uploads/a.tar.gz", 99_990, 100).await.unwrap().unwrap().len(), 10);
        assert_eq!(b.read_from("logs/none.log", 0, 10).await.unwrap(), None);
        let out = dir.path().join("out/copy.bin");
        assert!(b.fetch_to_file("uploads/a.tar.gz", &out).await.unwrap());
        assert!(!b.fetch_to_file("uploads/none", &out).await.unwrap());
        b.delete("uploads/a.tar.gz").await.unwrap();
        assert!(!b.exists("uploads/a.tar.gz").await.unwrap());
        assert!(!b.is_shared());
    }

    #[test]
    fn every_backend_reads_its_url_and_refuses_unknown_options() {
        let opts = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(Blobs::open("s3://bucket", &opts("aws_region", "us-east-1")).is_ok());
        assert!(Blobs::open("azure://container", &opts("azure_storage_use_emulator", "true")).is_ok());
        assert!(Blobs::open("memory://", &BTreeMap::new()).unwrap().is_shared());
        let e = Blobs::open("s3://bucket", &opts("no_such_option", "x")).unwrap_err().to_string();
        assert!(e.contains("no_such_option"), "{e}");
    }

    #[test]
    fn errors_never_show_credentials() {
        let e = Blobs::open("ftp://user:s3cret@host/c?sig=abc", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && !e.contains("abc") && e.contains("ftp"), "{e}");
    }
}
