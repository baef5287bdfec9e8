//! The Iceberg REST catalog (Cloudflare R2 Data Catalog and others), wired to Walden's object
//! store.
//!
//! The iceberg crate's [`RestCatalog`] speaks the protocol; this module gives it
//! - an HTTP client whose bearer token is a *sensitive* default header, so the token never enters
//!   the catalog's or a table's properties (which the iceberg crate prints in `Debug` and hands
//!   to every `FileIO`). An OAuth2 client credential is exchanged for a token here, once, for the
//!   same reason;
//! - timeouts, so a catalog that stops answering fails the archive run instead of hanging it;
//! - [`RestStorageFactory`]: every `FileIO` the catalog builds (for loaded, created and committed
//!   tables) reads and writes through the lake's own object store. What the catalog says about
//!   storage in its config or a table's config (endpoints, vended credentials) is not used; the
//!   factory says once, by key name only, that it ignored vended credentials.
//!
//! Commits go through the catalog's `POST .../tables/{table}` with the iceberg crate's
//! requirements (the current snapshot must still be the one the batch was built on), so a
//! conflicting writer fails the commit instead of duplicating LSNs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use iceberg::CatalogBuilder;
use iceberg::io::{Storage, StorageConfig, StorageFactory};
use iceberg_catalog_rest::{REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE, RestCatalog, RestCatalogBuilder};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::config::{RestCatalogOptions, looks_secret};
use crate::error::{ArchiveError, Result};
use crate::storage::{ObjectStoreStorage, ObjectStoreStorageFactory};

/// Time to establish a connection to the REST catalog.
pub const REST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one REST catalog request (connect, send, receive the whole response) may take.
pub const REST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest error text of a token endpoint quoted in an error.
const ERROR_TEXT_MAX_CHARS: usize = 200;

/// Connects the iceberg REST catalog described by `options` (exchanging an OAuth2 credential
/// for a token first), with every file going through `storage`. The catalog's `/v1/config` is
/// fetched lazily, by the first request.
pub(crate) async fn connect(
    name: &str,
    options: &RestCatalogOptions,
    storage: ObjectStoreStorage,
) -> Result<RestCatalog> {
    options.validate()?;
    let uri = options.base_uri();
    let token = match (&options.token, &options.credential) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(credential)) => Some(exchange_credential(uri, credential, &options.props).await?),
        (None, None) => None,
    };
    let client = http_client(uri, token.as_deref())?;
    let mut props: HashMap<String, String> = options.props.clone().into_iter().collect();
    props.insert(REST_CATALOG_PROP_URI.to_string(), uri.to_string());
    if let Some(warehouse) = &options.warehouse {
        props.insert(REST_CATALOG_PROP_WAREHOUSE.to_string(), warehouse.clone());
    }
    let factory = RestStorageFactory::new(ObjectStoreStorageFactory::new(storage), uri);
    RestCatalogBuilder::default()
        .with_client(client)
        .with_storage_factory(Arc::new(factory))
        .load(name, props)
        .await
        .map_err(|e| ArchiveError::Iceberg(e.with_context("catalog", format!("REST {uri}"))))
}

/// The HTTP client of the catalog: timeouts, and the bearer token as a sensitive header.
fn http_client(uri: &str, token: Option<&str>) -> Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ArchiveError::Config(format!("REST catalog {uri:?}: the token is not a valid HTTP header value"))
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(REST_CONNECT_TIMEOUT)
        .timeout(REST_REQUEST_TIMEOUT)
        .build()
        .map_err(|e| ArchiveError::Catalog(format!("REST catalog {uri}: cannot build the HTTP client: {e}")))
}

/// The OAuth2 token response (RFC 6749 §5.1; what Iceberg REST catalogs answer).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// The Iceberg REST error body, `{"error": {"message", "type", "code"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorModel,
}

#[derive(Deserialize)]
struct ErrorModel {
    message: Option<String>,
    r#type: Option<String>,
}

/// Exchanges an OAuth2 client credential (`client_id:client_secret` or just the secret) for a
/// bearer token with the client-credentials grant. Errors name the endpoint, never the secret.
async fn exchange_credential(uri: &str, credential: &str, props: &BTreeMap<String, String>) -> Result<String> {
    let endpoint = props.get("oauth2-server-uri").cloned().unwrap_or_else(|| format!("{uri}/v1/oauth/tokens"));
    let fail =
        |why: String| ArchiveError::Catalog(format!("REST catalog {uri}: OAuth2 token request to {endpoint}: {why}"));
    let (client_id, client_secret) = match credential.split_once(':') {
        Some((id, secret)) => (Some(id), secret),
        None => (None, credential),
    };
    let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    form.push(("client_secret", client_secret));
    form.push(("scope", props.get("scope").map_or("catalog", String::as_str)));
    for key in ["audience", "resource"] {
        if let Some(value) = props.get(key) {
            form.push((key, value));
        }
    }
    let response = http_client(uri, None)?
        .post(&endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| fail(e.without_url().to_string()))?;
    if !status.is_success() {
        // Quote only the error's message and type: the rest of a body is not ours to print.
        let detail = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| {
                let text = format!("{}: {}", b.error.r#type.unwrap_or_default(), b.error.message.unwrap_or_default());
                text.chars().take(ERROR_TEXT_MAX_CHARS).collect::<String>()
            })
            .unwrap_or_default();
        return Err(fail(format!("HTTP {status} {detail}")));
    }
    let token: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| fail(format!("the response is not a token response ({e})")))?;
    if let Some(seconds) = token.expires_in {
        tracing::info!(
            catalog = %uri,
            expires_in_s = seconds,
            "got a REST catalog token; it is not refreshed: reopen the archiver before it expires"
        );
    }
    Ok(token.access_token)
}

/// Whether a storage property is a credential a catalog vends (`s3.access-key-id`,
/// `s3.secret-access-key`, `s3.session-token`, `gcs.oauth2.token`, `adls.sas-token.*`, ...).
fn is_vended_credential(key: &str) -> bool {
    ["s3.", "gcs.", "adls.", "client."].iter().any(|p| key.starts_with(p)) && looks_secret(key)
}

/// The storage factory handed to the REST catalog: always the lake's own object store (see the
/// module docs). Storage credentials the catalog vends are ignored; that is logged once, by key
/// name only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestStorageFactory {
    inner: ObjectStoreStorageFactory,
    /// The catalog URI, for the log line.
    catalog: String,
    #[serde(skip)]
    reported_vended: Arc<AtomicBool>,
}

impl RestStorageFactory {
    /// A factory handing out `inner`'s storage for the catalog at `catalog_uri`.
    pub fn new(inner: ObjectStoreStorageFactory, catalog_uri: &str) -> RestStorageFactory {
        RestStorageFactory { inner, catalog: catalog_uri.to_string(), reported_vended: Arc::default() }
    }
}

#[typetag::serde]
impl StorageFactory for RestStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        let mut vended: Vec<&str> =
            config.props().keys().map(String::as_str).filter(|k| is_vended_credential(k)).collect();
        if !vended.is_empty() && !self.reported_vended.swap(true, Ordering::Relaxed) {
            vended.sort_unstable();
            tracing::info!(
                catalog = %self.catalog,
                keys = ?vended,
                "the REST catalog vends storage credentials; Walden does not use them and reaches the \
                 lake through its own object store settings"
            );
        }
        self.inner.build(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_vended_credentials_by_key() {
        for key in ["s3.access-key-id", "s3.secret-access-key", "s3.session-token", "gcs.oauth2.token"] {
            assert!(is_vended_credential(key), "{key}");
        }
        for key in ["s3.endpoint", "s3.region", "client.region", "token", "prefix"] {
            assert!(!is_vended_credential(key), "{key}");
        }
    }

    #[test]
    fn the_token_is_a_sensitive_header() {
        let client = http_client("http://127.0.0.1:9", Some("tok-123-secret")).unwrap();
        assert!(!format!("{client:?}").contains("tok-123-secret"));
        let err = http_client("http://127.0.0.1:9", Some("bad\ntoken")).unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:9") && !err.contains("bad"), "{err}");
    }
}
