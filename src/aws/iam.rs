//! MSK IAM authentication: SASL OAUTHBEARER with a SigV4-presigned `kafka-cluster:Connect` URL as
//! the token, the same token AWS's own signer libraries (`aws-msk-iam-sasl-signer-*`) make:
//!
//! 1. `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`, presigned with
//!    SigV4 for service `kafka-cluster`, valid 900 s, with the credentials of the standard chain
//!    (environment, profile, web identity for IRSA, container and instance roles);
//! 2. a `User-Agent` query parameter appended after signing;
//! 3. the URL base64url-encoded without padding. The token expires 900 s after its signing time.
//!
//! librdkafka asks for a new token at 80% of its lifetime (see [`crate::kafka::ffi::MainQueuePump`]);
//! credentials are cached until five minutes before they expire.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;

use crate::kafka::ffi::{BearerToken, TokenSource};
use crate::kafka::{Connection, TokenSlot};

/// `conn` with an MSK IAM token source attached when its mechanism is `AWS_MSK_IAM` (unchanged
/// otherwise). Call inside the Tokio runtime that will outlive the clients made from it.
pub async fn attach(mut conn: Connection) -> Result<Connection, String> {
    if conn.uses_msk_iam() && conn.tokens.0.is_none() {
        let signer = Arc::new(MskIamSigner::from_environment(conn.aws_region.clone()).await?);
        // Fail now, with the reason, rather than in librdkafka's background retries.
        signer.token_now_async().await?;
        conn.tokens = TokenSlot(Some(signer.token_source()));
    }
    Ok(conn)
}

/// How long a token is valid (the signers' and MSK's value).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The user agent appended to the token URL.
pub const USER_AGENT: &str = concat!("catchup/", env!("CARGO_PKG_VERSION"));

/// The presigned `kafka-cluster:Connect` URL for `region`, signed at `at`.
pub fn presigned_connect_url(
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
) -> Result<String, String> {
    let host = format!("kafka.{region}.amazonaws.com");
    let base = format!("https://{host}/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    let mut url = base;
    let (_, query) = instructions.into_parts();
    for (name, value) in query.iter().map(|(n, v)| (*n, v.as_ref())) {
        url.push('&');
        url.push_str(&encode(name));
        url.push('=');
        url.push_str(&encode(value));
    }
    url.push_str("&User-Agent=");
    url.push_str(&encode(USER_AGENT));
    Ok(url)
}

fn encode(s: &str) -> String {
    // RFC 3986 unreserved characters stay; everything else is percent-encoded (SigV4's rule).
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The OAUTHBEARER token for `credentials` in `region`, signed at `at`.
pub fn token(
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
) -> Result<BearerToken, String> {
    let url = presigned_connect_url(credentials, region, at)?;
    // The token expires TOKEN_LIFETIME after the signing time, which SigV4 truncates to seconds.
    let signed_secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let expires_ms = (signed_secs + TOKEN_LIFETIME.as_secs()) as i64 * 1000;
    Ok(BearerToken {
        value: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url),
        principal: credentials.access_key_id().to_string(),
        expires_ms,
    })
}

/// Makes MSK IAM tokens from the standard AWS credential chain.
pub struct MskIamSigner {
    region: String,
    provider: SharedCredentialsProvider,
    runtime: tokio::runtime::Handle,
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for MskIamSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MskIamSigner")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl MskIamSigner {
    /// A signer for `region` with credentials from `provider`, fetched on `runtime`.
    pub fn new(
        region: String,
        provider: SharedCredentialsProvider,
        runtime: tokio::runtime::Handle,
    ) -> MskIamSigner {
        MskIamSigner {
            region,
            provider,
            runtime,
            cached: Mutex::new(None),
        }
    }

    /// A signer for `region` (or the chain's region) using the standard credential chain. Must be
    /// called inside the Tokio runtime the credential fetches will run on.
    pub async fn from_environment(region: Option<String>) -> Result<MskIamSigner, String> {
        let config = super::sdk_config(region.as_deref(), None).await;
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region: set cluster.msk.cluster_arn, kafka.aws_region or AWS_REGION")?;
        let provider = config
            .credentials_provider()
            .ok_or("no AWS credential provider")?;
        Ok(MskIamSigner::new(
            region,
            provider,
            tokio::runtime::Handle::current(),
        ))
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Credentials: the cached ones unless missing or expiring within five minutes, else fetched
    /// from the chain and cached.
    async fn fresh_credentials(&self) -> Result<Credentials, String> {
        let margin = crate::clock::system_now() + Duration::from_secs(300);
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|c| c.expiry().is_none_or(|e| e > margin));
        if let Some(c) = cached {
            return Ok(c);
        }
        let fetched = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {}", super::error_chain(&e)))?;
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(fetched.clone());
        Ok(fetched)
    }

    /// A token signed now, from async code.
    pub async fn token_now_async(&self) -> Result<BearerToken, String> {
        token(
            &self.fresh_credentials().await?,
            &self.region,
            crate::clock::system_now(),
        )
    }

    /// A token signed now. Blocking: call it off the async executor.
    pub fn token_now(&self) -> Result<BearerToken, String> {
        let credentials = self.runtime.block_on(self.fresh_credentials())?;
        token(&credentials, &self.region, crate::clock::system_now())
    }

    /// The signer as librdkafka's token source.
    pub fn token_source(self: Arc<Self>) -> TokenSource {
        Arc::new(move || self.token_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_token_is_the_presigned_connect_url_in_base64url() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        // 2026-01-02T03:04:05Z
        let t = token(&creds, "eu-west-1", at(1_767_323_045)).unwrap();
        assert!(!t.value.contains('=') && !t.value.contains('+') && !t.value.contains('/'));
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t.value)
                .unwrap(),
        )
        .unwrap();
        assert!(
            url.starts_with(
                "https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Feu-west-1%2Fkafka-cluster%2Faws4_request",
            "X-Amz-Date=20260102T030405Z",
            "X-Amz-Expires=900",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
        assert!(url.ends_with(&format!(
            "&User-Agent=catchup%2F{}",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(!url.contains("X-Amz-Security-Token"));
        assert_eq!(t.expires_ms, (1_767_323_045 + 900) * 1000);
    }

    #[test]
    fn session_credentials_carry_their_token_and_the_signature_depends_on_time() {
        let creds = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session/token+=".into()),
            None,
            "t",
        );
        let a = presigned_connect_url(&creds, "us-east-1", at(1_767_323_045)).unwrap();
        let b = presigned_connect_url(&creds, "us-east-1", at(1_767_323_046)).unwrap();
        assert!(
            a.contains("X-Amz-Security-Token=session%2Ftoken%2B%3D"),
            "{a}"
        );
        let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap()[..64].to_string();
        assert_ne!(sig(&a), sig(&b));
    }

    #[test]
    fn expired_cached_credentials_are_fetched_again() {
        use aws_credential_types::provider::future;
        #[derive(Debug)]
        struct Counting(Arc<std::sync::atomic::AtomicU32>);
        impl ProvideCredentials for Counting {
            fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The first credentials expire in one minute (inside the five-minute margin).
                let expiry = crate::clock::system_now()
                    + Duration::from_secs(if n == 0 { 60 } else { 3600 });
                future::ProvideCredentials::ready(Ok(Credentials::new(
                    format!("AKID{n}"),
                    "s",
                    None,
                    Some(expiry),
                    "test",
                )))
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let signer = MskIamSigner::new(
            "us-east-1".into(),
            SharedCredentialsProvider::new(Counting(calls.clone())),
            rt.handle().clone(),
        );
        assert_eq!(signer.token_now().unwrap().principal, "AKID0");
        assert_eq!(signer.token_now().unwrap().principal, "AKID1");
        assert_eq!(signer.token_now().unwrap().principal, "AKID1");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
