//! The iceberg crate's storage traits ([`Storage`], [`StorageFactory`], [`FileRead`],
//! [`FileWrite`]) implemented over [`object_store`], so every byte of the lake (data files,
//! manifests, metadata) goes through one object store: local files, S3/R2 or memory.
//!
//! Locations are URLs; the part after the store root (`file:///`, `s3://bucket/`, `memory://`)
//! is the object key. Writes of up to one part are a single PUT; larger ones are multipart uploads
//! whose non-final parts all have exactly `part_bytes` (R2 rejects unequal parts).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error as IcebergError, ErrorKind};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};

/// Uploads in flight per multipart writer.
const MAX_CONCURRENT_PARTS: usize = 2;

fn store_error(what: &str, location: &str, e: object_store::Error) -> IcebergError {
    let kind = match e {
        object_store::Error::NotFound { .. } => ErrorKind::DataInvalid,
        _ => ErrorKind::Unexpected,
    };
    IcebergError::new(kind, format!("{what} {location} failed")).with_source(e)
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
        self.store()?.put(&self.key(path)?, PutPayload::from(bs)).await.map_err(|e| store_error("put", path, e))?;
        Ok(())
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
                self.store.put(&self.key, payload).await.map_err(|e| store_error("put", &self.location, e))?;
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

    #[test]
    fn rejects_locations_outside_the_lake() {
        let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()), "s3://bucket/", 16);
        assert!(storage.new_input("s3://other/x").is_err());
        assert_eq!(storage.key("s3://bucket/a/b%20c").unwrap().as_ref(), "a/b c");
    }
}
