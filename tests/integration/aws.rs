//! AWS parts against peers nobody here wrote: the MSK IAM token against AWS's own Python signer,
//! and MSK discovery against moto's MSK control plane over real HTTP.

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use catchup::aws::iam;

fn python_signer_check(region: &str, creds: &Credentials, token: &str) -> serde_json::Value {
    let script = super::root().join("tests/integration/python/msk_token.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            region,
            creds.access_key_id(),
            creds.secret_access_key(),
            creds.session_token().unwrap_or("-"),
            token,
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the AWS signer cross-check failed (is aws-msk-iam-sasl-signer-python installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from msk_token.py")
}

#[test]
fn msk_iam_token_equals_what_aws_signer_makes() {
    let cases = [
        (
            "eu-west-1",
            Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            ),
        ),
        (
            "us-east-1",
            Credentials::new(
                "ASIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/session=".into()),
                None,
                "test",
            ),
        ),
    ];
    for (region, creds) in cases {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let ours = iam::token(&creds, region, at).unwrap();
        let check = python_signer_check(region, &creds, &ours.value);
        assert_eq!(
            check["agree"], true,
            "catchup's token differs from aws-msk-iam-sasl-signer-python's: {check:#}"
        );
        // Same signature, and both expire 900 s after signing.
        assert_eq!(
            check["ours"]["X-Amz-Signature"],
            check["theirs"]["X-Amz-Signature"]
        );
        assert_eq!(check["their_expiry_ms"], ours.expires_ms);
    }
}
