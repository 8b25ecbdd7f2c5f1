"""A person changing a topic config with another tool (kafka-python's IncrementalAlterConfigs).

Usage: python3 alter.py BOOTSTRAP TOPIC KEY VALUE   (VALUE "-" deletes the key)
"""
import sys

from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient

bootstrap, topic, key, value = sys.argv[1:5]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="a-person")
op = (AlterConfigOp.DELETE, None) if value == "-" else (AlterConfigOp.SET, value)
result = admin.alter_configs(
    [ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: op})], incremental=True
)
print(result)
