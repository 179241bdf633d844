//! Context uploads: streamed to disk, then checked entry by entry before anything
//! uses them. Nothing is ever written outside the data directory.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("upload is refused: {0}")]
    Archive(#[from] slipway_context::archive::ArchiveError),
    #[error("upload was interrupted: {0}")]
    Interrupted(String),
    #[error("cannot store the upload: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    pub fn status(&self) -> u16 {
        use slipway_context::archive::ArchiveError as A;
        match self {
            UploadError::TooLarge { .. } | UploadError::Archive(A::TooLarge { .. } | A::TooManyEntries { .. }) => 413,
            UploadError::Io(_) | UploadError::Archive(A::Io(_)) => 500,
            _ => 400,
        }
    }
}

pub fn archive_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("uploads").join(format!("{id}.tar.gz"))
}

/// Streams `body` into the data dir, then checks it. Returns the upload's size.
pub async fn receive(
    data_dir: &Path,
    id: &str,
    mut body: impl Stream<Item = Result<Bytes, String>> + Unpin,
    limit: u64,
    limits: slipway_context::archive::Limits,
) -> Result<u64, UploadError> {
    let dir = data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir).await?;
    let part = dir.join(format!("{id}.part"));
    let mut file = tokio::fs::File::create(&part).await?;
    let mut size = 0u64;
    let result: Result<(), UploadError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(UploadError::Interrupted)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(UploadError::TooLarge { limit });
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    let check = part.clone();
    let checked = tokio::task::spawn_blocking(move || check_archive(&check, &limits))
        .await
        .map_err(|e| UploadError::Interrupted(e.to_string()))?;
    if let Err(e) = checked {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(e);
    }
    tokio::fs::rename(&part, archive_path(data_dir, id)).await?;
    Ok(size)
}

/// Walks every entry without unpacking (see [`slipway_context::archive`]).
pub fn check_archive(path: &Path, limits: &slipway_context::archive::Limits) -> Result<(), UploadError> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    slipway_context::archive::check(file, limits)?;
    Ok(())
}

/// Unpacks a `.tar.gz` beneath `dest`, checking every entry again as it goes.
pub fn extract(archive: &Path, dest: &Path, limits: &slipway_context::archive::Limits) -> Result<(), UploadError> {
    std::fs::create_dir_all(dest)?;
    let into = slipway_context::Dir::open_ambient_dir(dest, slipway_context::ambient_authority())?;
    let file = std::io::BufReader::new(std::fs::File::open(archive)?);
    slipway_context::archive::unpack(file, limits, &into)?;
    Ok(())
}

/// Writes `dir` as a tar.gz to `out` (the client's packing; `.dockerignore` applies).
pub fn pack(dir: &Path, dockerfile: &str, out: impl Write) -> Result<(), slipway_context::ContextError> {
    let root = slipway_context::Dir::open_ambient_dir(dir, slipway_context::ambient_authority())
        .map_err(|_| slipway_context::ContextError::Missing { path: dir.to_path_buf() })?;
    let ignore = slipway_context::context_ignore(&root, dockerfile)?;
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let always = vec![
        if dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            dockerfile.to_string()
        },
        ".dockerignore".to_string(),
    ];
    slipway_context::write_tar(&root, &ignore, &always, &slipway_context::Overlay::default(), &mut gz)?;
    gz.finish().map_err(|source| slipway_context::ContextError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}
