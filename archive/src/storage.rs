//! The iceberg crate's storage traits ([`Storage`], [`StorageFactory`], [`FileRead`],
//! [`FileWrite`]) implemented over [`object_store`], so every byte of the lake (data files,
//! manifests, metadata) goes through one object store: local files, S3/R2 or memory.
//!
//! Locations are URLs; the part after the store root (`file:///`, `s3://bucket/`, `memory://`)
//! is the object key. Writes of up to one part are a single PUT; larger ones are multipart uploads
//! whose non-final parts all have exactly `part_bytes` (R2 rejects unequal parts).
//!
//! Every file of the lake is written once, under a fresh name (data files, manifests, manifest
//! lists and metadata JSON all carry a UUID), so every write is a create: a PUT with
//! [`PutMode::Create`] (`If-None-Match: *` on S3 and R2, a hard link on local disks), and a
//! second writer of the same location gets an [`ErrorKind::PreconditionFailed`] error whose source
//! is [`object_store::Error::AlreadyExists`] instead of overwriting the file. object_store 0.13
//! completes multipart uploads unconditionally, so a multipart file (only a data file larger than
//! one part) is checked to be absent before its upload starts; the window between that check and
//! the completion is not covered.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error as IcebergError, ErrorKind};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};

/// Uploads in flight per multipart writer.
const MAX_CONCURRENT_PARTS: usize = 2;

fn store_error(what: &str, location: &str, e: object_store::Error) -> IcebergError {
    let kind = match e {
        object_store::Error::NotFound { .. } => ErrorKind::DataInvalid,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            ErrorKind::PreconditionFailed
        }
        _ => ErrorKind::Unexpected,
    };
    IcebergError::new(kind, format!("{what} {location} failed")).with_source(e)
}

/// Writes `payload` under `key` unless something is there already.
async fn put_new(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    location: &str,
    payload: PutPayload,
) -> iceberg::Result<()> {
    store
        .put_opts(key, payload, PutOptions::from(PutMode::Create))
        .await
        .map_err(|e| store_error("create", location, e))?;
    Ok(())
}

/// An iceberg [`Storage`] over an [`ObjectStore`].
///
/// The object store handle is not serialisable: a deserialised instance (iceberg only does that
/// to ship a `FileIO` elsewhere, which Walden never does) refuses every operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorage {
    #[serde(skip)]
    store: Option<Arc<dyn ObjectStore>>,
    /// URL prefix stripped from locations to get keys, e.g. `s3://bucket/`.
    root: String,
    /// Multipart part size.
    part_bytes: usize,
}

impl ObjectStoreStorage {
    /// Storage over `store`, whose objects are addressed as `root` + key.
    pub fn new(store: Arc<dyn ObjectStore>, root: impl Into<String>, part_bytes: usize) -> ObjectStoreStorage {
        ObjectStoreStorage { store: Some(store), root: root.into(), part_bytes: part_bytes.max(1) }
    }

    fn store(&self) -> iceberg::Result<&Arc<dyn ObjectStore>> {
        self.store.as_ref().ok_or_else(|| {
            IcebergError::new(ErrorKind::FeatureUnsupported, "a deserialised ObjectStoreStorage has no object store")
        })
    }

    /// The object key of `location`.
    pub fn key(&self, location: &str) -> iceberg::Result<ObjectPath> {
        let rest = location.strip_prefix(self.root.as_str()).ok_or_else(|| {
            IcebergError::new(ErrorKind::DataInvalid, format!("location {location} is outside the lake {}", self.root))
        })?;
        ObjectPath::from_url_path(rest).map_err(|e| {
            IcebergError::new(ErrorKind::DataInvalid, format!("location {location} is not a valid object key"))
                .with_source(e)
        })
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        match self.store()?.head(&self.key(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error("head", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let meta = self.store()?.head(&self.key(path)?).await.map_err(|e| store_error("head", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let got = self.store()?.get(&self.key(path)?).await.map_err(|e| store_error("get", path, e))?;
        got.bytes().await.map_err(|e| store_error("get", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(ObjectFileRead { store: self.store()?.clone(), key: self.key(path)?, location: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        put_new(self.store()?.as_ref(), &self.key(path)?, path, PutPayload::from(bs)).await
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        Ok(Box::new(ObjectFileWrite {
            store: self.store()?.clone(),
            key: self.key(path)?,
            location: path.to_string(),
            part_bytes: self.part_bytes,
            buffer: BytesMut::new(),
            upload: None,
            closed: false,
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        match self.store()?.delete(&self.key(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let store = self.store()?.clone();
        let prefix = self.key(path)?;
        let keys = store.list(Some(&prefix)).map(|meta| meta.map(|m| m.location)).boxed();
        let mut deleted = store.delete_stream(keys);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error("delete under", path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.key(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        self.key(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Hands the one [`ObjectStoreStorage`] it was made with to every `FileIO` built from it
/// (the storage configuration properties are ignored: the store is configured by
/// [`crate::LakeConfig`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorageFactory {
    storage: ObjectStoreStorage,
}

impl ObjectStoreStorageFactory {
    /// A factory handing out `storage`.
    pub fn new(storage: ObjectStoreStorage) -> ObjectStoreStorageFactory {
        ObjectStoreStorageFactory { storage }
    }
}

#[typetag::serde]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        self.storage.store()?;
        Ok(Arc::new(self.storage.clone()))
    }
}

/// Ranged reads of one object.
#[derive(Debug)]
struct ObjectFileRead {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    location: String,
}

#[async_trait]
impl FileRead for ObjectFileRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| store_error("ranged get", &self.location, e))
    }
}

/// Buffers up to one part; a larger file becomes a multipart upload with equal parts. Nothing is
/// visible under the key until `close` succeeds; a writer dropped unclosed aborts its upload.
/// Never overwrites: a file of up to one part is created with a conditional PUT, a larger one
/// only after checking that nothing is under its key.
struct ObjectFileWrite {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    location: String,
    part_bytes: usize,
    buffer: BytesMut,
    upload: Option<WriteMultipart>,
    closed: bool,
}

#[async_trait]
impl FileWrite for ObjectFileWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        if self.closed {
            return Err(IcebergError::new(ErrorKind::Unexpected, format!("write to closed file {}", self.location)));
        }
        if let Some(upload) = &mut self.upload {
            upload
                .wait_for_capacity(MAX_CONCURRENT_PARTS)
                .await
                .map_err(|e| store_error("upload", &self.location, e))?;
            upload.put(bs);
            return Ok(());
        }
        self.buffer.extend_from_slice(&bs);
        if self.buffer.len() > self.part_bytes {
            match self.store.head(&self.key).await {
                Err(object_store::Error::NotFound { .. }) => {}
                Ok(_) => {
                    let e = object_store::Error::AlreadyExists {
                        path: self.key.to_string(),
                        source: "a lake file is written once".into(),
                    };
                    return Err(store_error("upload", &self.location, e));
                }
                Err(e) => return Err(store_error("head", &self.location, e)),
            }
            let multipart =
                self.store.put_multipart(&self.key).await.map_err(|e| store_error("upload", &self.location, e))?;
            let mut upload = WriteMultipart::new_with_chunk_size(multipart, self.part_bytes);
            upload.put(std::mem::take(&mut self.buffer).freeze());
            self.upload = Some(upload);
        }
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        if self.closed {
            return Err(IcebergError::new(ErrorKind::Unexpected, format!("file {} closed twice", self.location)));
        }
        self.closed = true;
        match self.upload.take() {
            Some(upload) => {
                upload.finish().await.map_err(|e| store_error("upload", &self.location, e))?;
            }
            None => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer).freeze());
                put_new(self.store.as_ref(), &self.key, &self.location, payload).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn round_trips_small_and_multipart_files() {
        rt().block_on(async {
            let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()), "memory://", 16);
            let small = "memory://t/small.bin";
            let mut w = storage.writer(small).await.unwrap();
            w.write(Bytes::from_static(b"hello")).await.unwrap();
            assert!(!storage.exists(small).await.unwrap(), "nothing visible before close");
            w.close().await.unwrap();
            assert!(w.close().await.is_err());
            assert_eq!(storage.read(small).await.unwrap(), Bytes::from_static(b"hello"));

            let big = "memory://t/big.bin";
            let data: Vec<u8> = (0..100u8).collect();
            let mut w = storage.writer(big).await.unwrap();
            for chunk in data.chunks(7) {
                w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            w.close().await.unwrap();
            assert_eq!(storage.metadata(big).await.unwrap().size, 100);
            let r = storage.reader(big).await.unwrap();
            assert_eq!(r.read(10..20).await.unwrap().as_ref(), &data[10..20]);

            storage.delete_prefix("memory://t").await.unwrap();
            assert!(!storage.exists(small).await.unwrap());
            assert!(!storage.exists(big).await.unwrap());
            storage.delete(big).await.unwrap(); // deleting a missing file is fine
        });
    }

    /// The error a second create of `location` must give: typed, with object_store's
    /// `AlreadyExists` as its source.
    fn assert_already_exists(result: iceberg::Result<()>, location: &str) {
        let e = result.expect_err(location);
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{location}: {e}");
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<object_store::Error>());
        assert!(matches!(source, Some(object_store::Error::AlreadyExists { .. })), "{location}: {e:?}");
    }

    async fn write_with_writer(storage: &ObjectStoreStorage, location: &str, data: &[u8]) -> iceberg::Result<()> {
        let mut w = storage.writer(location).await?;
        for chunk in data.chunks(7) {
            w.write(Bytes::copy_from_slice(chunk)).await?;
        }
        w.close().await
    }

    #[test]
    fn never_overwrites_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let local = format!("file://{}/", dir.path().to_str().unwrap());
        let stores: [(Arc<dyn ObjectStore>, &str, String); 2] = [
            (Arc::new(InMemory::new()), "memory://", "memory://".to_string()),
            (Arc::new(object_store::local::LocalFileSystem::new()), "file:///", local),
        ];
        rt().block_on(async {
            for (store, root, base) in stores {
                let storage = ObjectStoreStorage::new(store, root, 16);
                let small = format!("{base}t/small.bin");
                storage.write(&small, Bytes::from_static(b"first")).await.unwrap();
                assert_already_exists(storage.write(&small, Bytes::from_static(b"second")).await, &small);
                assert_already_exists(write_with_writer(&storage, &small, b"third").await, &small);
                assert_eq!(storage.read(&small).await.unwrap(), Bytes::from_static(b"first"));

                // Larger than one part: refused before the upload starts.
                let big = format!("{base}t/big.bin");
                let data: Vec<u8> = (0..100u8).collect();
                write_with_writer(&storage, &big, &data).await.unwrap();
                assert_already_exists(write_with_writer(&storage, &big, &[7u8; 50]).await, &big);
                assert_already_exists(storage.write(&big, Bytes::from_static(b"x")).await, &big);
                assert_eq!(storage.read(&big).await.unwrap().as_ref(), &data[..]);

                // Deleting makes the name free again.
                storage.delete(&small).await.unwrap();
                storage.write(&small, Bytes::from_static(b"again")).await.unwrap();
            }
        });
    }

    #[test]
    fn rejects_locations_outside_the_lake() {
        let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()), "s3://bucket/", 16);
        assert!(storage.new_input("s3://other/x").is_err());
        assert_eq!(storage.key("s3://bucket/a/b%20c").unwrap().as_ref(), "a/b c");
    }
}
