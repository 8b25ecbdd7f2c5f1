"""moto's server, with one deviation of moto 5.2 from MSK corrected and, when asked, two calls it
lacks added.

1. moto writes an MSK cluster's `creationTime` as a local ISO time without a UTC offset
   ("2026-11-22T08:25:11.540726"); MSK writes RFC 3339 with one ("...Z"), and the AWS SDK for Rust
   rejects anything else, as it should. New clusters are stamped in UTC with the offset.
2. With MOTO_MSK_BOOTSTRAP=host:port set, ListNodes (one broker per `numberOfBrokerNodes`, ids from
   1) and GetBootstrapBrokers (that address for every authentication) are answered, in MSK's wire
   shapes, so the whole `cluster.kind = "msk"` path can run against a local Kafka. These two
   answers are ours, not moto's: tests that check discovery itself run without them.

Then moto's own server runs with the given arguments (e.g. -H 127.0.0.1 -p PORT).
"""

import datetime
import json
import os
import sys
from urllib.parse import unquote

from moto.kafka import models

_init = models.FakeKafkaCluster.__init__


def _init_with_utc_time(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    now = datetime.datetime.now(datetime.timezone.utc)
    self.creation_time = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


models.FakeKafkaCluster.__init__ = _init_with_utc_time

BOOTSTRAP = os.environ.get("MOTO_MSK_BOOTSTRAP")
if BOOTSTRAP:
    from moto.kafka import responses

    def _arn(self, suffix):
        path = self.parsed_url.path
        return unquote(path.split("/clusters/", 1)[1].rsplit(suffix, 1)[0])

    def list_nodes(self):
        arn = _arn(self, "/nodes")
        cluster = self.kafka_backend.clusters[arn]
        nodes = [
            {
                "nodeType": "BROKER",
                "nodeARN": f"{arn}/broker/{i}",
                "brokerNodeInfo": {"brokerId": float(i), "endpoints": [f"b-{i}.local"]},
            }
            for i in range(1, (cluster.number_of_broker_nodes or 0) + 1)
        ]
        return json.dumps({"nodeInfoList": nodes})

    def get_bootstrap_brokers(self):
        self.kafka_backend.clusters[_arn(self, "/bootstrap-brokers")]
        return json.dumps(
            {
                "bootstrapBrokerString": BOOTSTRAP,
                "bootstrapBrokerStringTls": BOOTSTRAP,
                "bootstrapBrokerStringSaslIam": BOOTSTRAP,
                "bootstrapBrokerStringSaslScram": BOOTSTRAP,
            }
        )

    responses.KafkaResponse.list_nodes = list_nodes
    responses.KafkaResponse.get_bootstrap_brokers = get_bootstrap_brokers

from moto.server import main  # noqa: E402

main(sys.argv[1:])
