"""Lag snapshot benchmark: catchup vs confluent-kafka's AdminClient, side by side, on tansu.

Starts tansu (SQLite) behind a counting TCP proxy (the broker advertises the proxy, so every request
goes through it), creates one topic of PARTITIONS partitions, commits offsets for GROUPS groups on
every partition, then times whole lag reads of all groups with each client and counts the Kafka
requests each sends. Prints min and median over RUNS runs.

Usage: python3 scripts/bench_lag.py [GROUPS] [PARTITIONS] [RUNS]
"""
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

GROUPS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
PARTITIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 500
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingProxy:
    """Forwards 127.0.0.1:listen to 127.0.0.1:target and counts Kafka request frames."""

    def __init__(self, listen, target):
        self.listen, self.target, self.requests = listen, target, 0
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.start(), self.loop).result()

    async def start(self):
        await asyncio.start_server(self.handle, "127.0.0.1", self.listen)

    async def handle(self, client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def requests():
            try:
                while True:
                    header = await client_r.readexactly(4)
                    body = await client_r.readexactly(int.from_bytes(header, "big"))
                    self.requests += 1
                    server_w.write(header + body)
                    await server_w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                server_w.close()

        async def responses():
            try:
                while True:
                    data = await server_r.read(65536)
                    if not data:
                        break
                    client_w.write(data)
                    await client_w.drain()
            except ConnectionError:
                pass
            client_w.close()

        await asyncio.gather(requests(), responses())


def main():
    tansu = os.environ.get("TANSU") or os.path.expanduser("~/.cargo/bin/tansu")
    if not os.path.exists(tansu):
        tansu = shutil.which("tansu") or sys.exit("tansu is missing: scripts/test.sh installs it")
    catchup = os.path.join(ROOT, "target", "release", "catchup")
    workdir = tempfile.mkdtemp(prefix="catchup-bench-lag-")
    broker_port, proxy_port = free_port(), free_port()
    broker = subprocess.Popen(
        [tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}", "--storage-engine", "sqlite://tansu.db"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", broker_port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        proxy = CountingProxy(proxy_port, broker_port)
        bootstrap = f"127.0.0.1:{proxy_port}"

        from confluent_kafka import Consumer, Producer, TopicPartition
        from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
        from confluent_kafka import ConsumerGroupTopicPartitions

        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic("bench", PARTITIONS, 1)]).values():
            f.result()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        for p in range(PARTITIONS):
            for i in range(4):
                producer.produce("bench", b"x", partition=p)
        producer.flush(60)
        for g in range(GROUPS):
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{g}", "enable.auto.commit": False})
            c.commit(offsets=[TopicPartition("bench", p, (p + g) % 4) for p in range(PARTITIONS)], asynchronous=False)
            c.close()
        groups = [f"g{g}" for g in range(GROUPS)]

        def run_catchup():
            args = [catchup, "lag", "--bootstrap-server", bootstrap, "--json"]
            for g in groups:
                args += ["--group", g]
            out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
            return {g["group"]: g["total_lag"] for g in json.loads(out)["groups"]}

        confluent_script = r'''
import json, sys
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
bootstrap, groups = sys.argv[1], sys.argv[2:]
admin = AdminClient({"bootstrap.servers": bootstrap})
result = {}
for g in groups:  # librdkafka accepts one group per ListConsumerGroupOffsets call
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result().topic_partitions
    ends = admin.list_offsets({TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in committed})
    result[g] = sum(ends[TopicPartition(tp.topic, tp.partition)].result().offset - tp.offset for tp in committed)
print(json.dumps(result))
'''

        def run_confluent():
            out = subprocess.run([sys.executable, "-c", confluent_script, bootstrap, *groups], check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        results = {}
        for name, fn in [("catchup lag", run_catchup), ("confluent-kafka AdminClient", run_confluent)]:
            times, counts, answer = [], [], None
            for _ in range(RUNS):
                before = proxy.requests
                start = time.perf_counter()
                answer = fn()
                times.append(time.perf_counter() - start)
                counts.append(proxy.requests - before)
            results[name] = (times, counts, answer)
        ours, theirs = results["catchup lag"][2], results["confluent-kafka AdminClient"][2]
        print(f"lag snapshot: {GROUPS} groups x {PARTITIONS} partitions on tansu, {RUNS} runs each, whole processes")
        for name, (times, counts, _) in results.items():
            print(f"  {name:<28} wall min {min(times):.3f} s, median {statistics.median(times):.3f} s; "
                  f"Kafka requests per snapshot {min(counts)}..{max(counts)} ({max(counts) / GROUPS:.1f} per group)")
        ratio = statistics.median(results["catchup lag"][0]) / statistics.median(results["confluent-kafka AdminClient"][0])
        print(f"  catchup / confluent-kafka median wall time: {ratio:.2f}")
        print(f"  totals agree: {ours == theirs}")
    finally:
        broker.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
