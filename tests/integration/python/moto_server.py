"""moto's server, with one deviation of moto 5.2 from MSK corrected.

moto writes an MSK cluster's `creationTime` as a local ISO time without a UTC offset
("2026-11-22T08:25:11.540726"); MSK writes RFC 3339 with one ("...Z"), and the AWS SDK for Rust
rejects anything else, as it should. This wrapper stamps new clusters in UTC with the offset and
then runs moto's own server with the given arguments (e.g. -H 127.0.0.1 -p PORT).
"""

import datetime
import sys

from moto.kafka import models

_init = models.FakeKafkaCluster.__init__


def _init_with_utc_time(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    now = datetime.datetime.now(datetime.timezone.utc)
    self.creation_time = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


models.FakeKafkaCluster.__init__ = _init_with_utc_time

from moto.server import main  # noqa: E402

main(sys.argv[1:])
