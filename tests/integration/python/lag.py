"""Independent lag read with kafka-python: prints {"topic-partition": [committed, log_end]} as JSON.

Usage: python3 lag.py BOOTSTRAP GROUP
"""
import json
import sys

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

bootstrap, group = sys.argv[1], sys.argv[2]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="catchup-crosscheck")
# kafka-python 3 renamed list_consumer_group_offsets to list_group_offsets.
if hasattr(admin, "list_group_offsets"):
    committed = admin.list_group_offsets({group: None})[group]
else:
    committed = admin.list_consumer_group_offsets(group)
consumer = KafkaConsumer(bootstrap_servers=bootstrap)
partitions = set(committed)
for topic in {tp.topic for tp in committed}:
    for p in consumer.partitions_for_topic(topic) or []:
        partitions.add(TopicPartition(topic, p))
ends = consumer.end_offsets(list(partitions))
out = {}
for tp in partitions:
    meta = committed.get(tp)
    out[f"{tp.topic}-{tp.partition}"] = [meta.offset if meta is not None and meta.offset >= 0 else None, ends[tp]]
print(json.dumps(out, sort_keys=True))
