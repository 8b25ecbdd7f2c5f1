"""Independent read with kafka-python of the record each partition's committed offset points at:
prints {"topic-partition": [committed, timestamp_ms, timestamp_type]} as JSON (null where the group
has consumed everything).

Usage: python3 record_time.py BOOTSTRAP GROUP
"""
import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

bootstrap, group = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="catchup-crosscheck")
if hasattr(admin, "list_group_offsets"):
    committed = admin.list_group_offsets({group: None})[group]
else:
    committed = admin.list_consumer_group_offsets(group)
out = {}
for tp, meta in committed.items():
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    record = next(iter(consumer), None)
    consumer.close()
    key = f"{tp.topic}-{tp.partition}"
    out[key] = [meta.offset, None, None] if record is None else [meta.offset, record.timestamp, record.timestamp_type]
print(json.dumps(out, sort_keys=True))
