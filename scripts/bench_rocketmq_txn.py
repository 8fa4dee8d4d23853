"""Transaction commit latency against plain sends, over Porter's RocketMQ gRPC gateway (issue 15's
"a transaction commit adds <= 1 ms p50 over a plain send"): N sequential plain SendMessage calls and N
sequential (transactional SendMessage + EndTransaction COMMIT) pairs, interleaved, from one raw gRPC
stub (the protobuf classes of rocketmq-python-client), and their medians.

    .venv/bin/python scripts/bench_rocketmq_txn.py 127.0.0.1:8081 500
"""
import sys, time, statistics, uuid
import grpc
from rocketmq.grpc_protocol import definition_pb2, service_pb2, service_pb2_grpc
ep = sys.argv[1]; n = int(sys.argv[2])
ch = grpc.insecure_channel(ep); stub = service_pb2_grpc.MessagingServiceStub(ch)
def req(kind):
    r = service_pb2.SendMessageRequest(); m = r.messages.add(); m.topic.name = "lat"; m.body = b"x"*100
    m.system_properties.message_id = uuid.uuid4().hex; m.system_properties.message_type = kind
    return r, m.system_properties.message_id
def plain():
    r, _ = req(definition_pb2.MessageType.NORMAL); t = time.perf_counter(); a = stub.SendMessage(r); d = time.perf_counter()-t
    assert a.status.code == definition_pb2.Code.OK, a; return d
def tx():
    r, mid = req(definition_pb2.MessageType.TRANSACTION); t = time.perf_counter(); a = stub.SendMessage(r)
    assert a.status.code == definition_pb2.Code.OK, a
    e = service_pb2.EndTransactionRequest(); e.topic.name = "lat"; e.message_id = mid; e.transaction_id = a.entries[0].transaction_id; e.resolution = definition_pb2.TransactionResolution.COMMIT
    b = stub.EndTransaction(e); d = time.perf_counter()-t; assert b.status.code == definition_pb2.Code.OK, b; return d
for f in (plain, tx): [f() for _ in range(20)]
P, T = [], []
for i in range(n):
    P.append(plain()); T.append(tx())
p, t = statistics.median(P)*1000, statistics.median(T)*1000
print(f"plain send p50 {p:.2f} ms; transactional send + commit p50 {t:.2f} ms; added {t-p:.2f} ms (n={n})")
