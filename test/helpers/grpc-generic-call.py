"""Calls ragkv.v1.RawKV from Python with grpc's generic unary call: no generated stubs, no
reflection, the request bytes encoded here by hand. Prints one JSON list of results.

Usage: python3 grpc-generic-call.py PORT
"""
import json
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(number, data):
    """One bytes, string or message field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def main():
    channel = grpc.insecure_channel('127.0.0.1:' + sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=10)

    def call(method, request):
        stub = channel.unary_unary('/ragkv.v1.RawKV/' + method)
        try:
            return {'ok': stub(request, timeout=10).hex()}
        except grpc.RpcError as error:
            return {'code': error.code().name, 'details': error.details()}

    cf = length_delimited(1, b'py')
    key = length_delimited(2, b'doc')
    pair = length_delimited(1, b'title') + length_delimited(2, b'from python')
    results = [
        call('FieldPut', cf + key + length_delimited(3, pair)),
        call('FieldGet', cf + key + length_delimited(3, b'title')),
        call('FieldGet', cf + key + length_delimited(3, b'f' * 513)),
    ]
    channel.close()
    print(json.dumps(results))


main()
