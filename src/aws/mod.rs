//! AWS plumbing: SDK configuration and clients, MSK cluster discovery ([`msk`]) and MSK IAM
//! authentication for the Kafka client ([`iam`]). The CloudWatch disk and copy-lag source is a
//! sensor ([`crate::sensors::disk::cloudwatch`]). Credentials and region come from the
//! standard chain (environment, profile, web identity for IRSA, container and instance roles).

pub mod iam;
pub mod msk;

/// The shared SDK configuration: the standard chain, with `region` and `endpoint_url` overriding it
/// when given (an endpoint for VPC endpoints or local test servers).
pub async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader.load().await
}

/// Retries for every AWS call: the SDK's standard policy (throttling, transient and 5xx errors, with
/// exponential backoff and jitter), three attempts, all inside the sensor timeout.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(3)
}

/// A CloudWatch client for `config` with [`retry_config`].
pub fn cloudwatch_client(
    config: &aws_config::SdkConfig,
    endpoint_url: Option<&str>,
) -> aws_sdk_cloudwatch::Client {
    let mut b = aws_sdk_cloudwatch::config::Builder::from(config).retry_config(retry_config());
    if let Some(u) = endpoint_url {
        b = b.endpoint_url(u);
    }
    aws_sdk_cloudwatch::Client::from_conf(b.build())
}

/// An MSK (`kafka`) client for `config` with [`retry_config`].
pub fn msk_client(
    config: &aws_config::SdkConfig,
    endpoint_url: Option<&str>,
) -> aws_sdk_kafka::Client {
    let mut b = aws_sdk_kafka::config::Builder::from(config).retry_config(retry_config());
    if let Some(u) = endpoint_url {
        b = b.endpoint_url(u);
    }
    aws_sdk_kafka::Client::from_conf(b.build())
}

/// An error with its sources, `: `-separated (the SDK's own Display says only "service error").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
