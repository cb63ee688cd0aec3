//! HDFS as an object store: hdfs-native's store with its errors put in object_store's terms.
//!
//! hdfs-native-object-store reports a NameNode's `java.io.FileNotFoundException` (a rename
//! whose source is gone, a delete or listing of a missing directory) as a generic error. Weir's
//! commits are idempotent because they read "not found" as "done already" (a file sink's rename
//! repeated after a restore), so this wrapper turns it into [`object_store::Error::NotFound`];
//! everything else passes through unchanged.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use hdfs_native::HdfsError;
use hdfs_native_object_store::HdfsObjectStore;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// An HDFS file system (one NameNode or name service).
#[derive(Debug)]
pub struct HdfsStore {
    inner: HdfsObjectStore,
}

impl HdfsStore {
    /// A store over `client`'s file system.
    pub fn new(client: hdfs_native::Client) -> Self {
        HdfsStore {
            inner: HdfsObjectStore::new(client),
        }
    }
}

impl std::fmt::Display for HdfsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HDFS")
    }
}

/// `NotFound` for the NameNode's FileNotFoundException; other errors as they are.
fn not_found(e: object_store::Error) -> object_store::Error {
    if let object_store::Error::Generic { source, .. } = &e
        && let Some(HdfsError::RPCError(class, message)) = source.downcast_ref::<HdfsError>()
        && class == "java.io.FileNotFoundException"
    {
        let first = message.lines().next().unwrap_or_default().to_string();
        return object_store::Error::NotFound {
            path: first.clone(),
            source: first.into(),
        };
    }
    e
}

#[async_trait]
impl ObjectStore for HdfsStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await.map_err(not_found)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await.map_err(not_found)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await.map_err(not_found)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner
            .delete_stream(locations)
            .map(|r| r.map_err(not_found))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix).map(|r| r.map_err(not_found)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await.map_err(not_found)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await.map_err(not_found)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await.map_err(not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namenodes_file_not_found_is_not_found() {
        let e = object_store::Error::Generic {
            store: "HdfsObjectStore",
            source: Box::new(HdfsError::RPCError(
                "java.io.FileNotFoundException".into(),
                "rename source /a is not found.\n\tat org.apache…".into(),
            )),
        };
        match not_found(e) {
            object_store::Error::NotFound { path, .. } => assert_eq!(path, "rename source /a is not found."),
            other => panic!("{other}"),
        }
        let other = object_store::Error::Generic {
            store: "HdfsObjectStore",
            source: Box::new(HdfsError::RPCError("java.io.IOException".into(), "disk full".into())),
        };
        assert!(matches!(not_found(other), object_store::Error::Generic { .. }));
    }
}
