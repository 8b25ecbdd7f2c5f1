"""Cross-check of catchup's MSK IAM token against AWS's own signer (aws-msk-iam-sasl-signer-python).

Usage: msk_token.py REGION ACCESS_KEY SECRET_KEY SESSION_TOKEN|- TOKEN

Decodes catchup's TOKEN, signs again with AWS's library at the same signing time (X-Amz-Date) and the
same credentials, and prints a JSON object: both decoded URLs' query parameters, and whether they
agree on everything but the User-Agent (each library names itself there).
"""

import base64
import datetime
import json
import sys
from unittest import mock
from urllib.parse import parse_qs, urlparse

import botocore.auth
from botocore.credentials import Credentials
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as signer


def decode(token):
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def params(url):
    parsed = urlparse(url)
    out = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    out["_host"] = parsed.netloc
    return out


def main():
    region, access, secret, session, ours = sys.argv[1:6]
    session = None if session == "-" else session
    our_url = decode(ours)
    ours_p = params(our_url)
    at = datetime.datetime.strptime(ours_p["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    creds = Credentials(access, secret, session)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        theirs, expiry_ms = getattr(signer, "__construct_auth_token")(region, creds)
    theirs_p = params(decode(theirs))
    strip = lambda p: {k: v for k, v in p.items() if k != "User-Agent"}
    print(
        json.dumps(
            {
                "agree": strip(ours_p) == strip(theirs_p),
                "ours": ours_p,
                "theirs": theirs_p,
                "their_expiry_ms": expiry_ms,
            }
        )
    )


main()
