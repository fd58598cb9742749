"""Writes cases.json: the hostile-input corpus. Each case is an input (a landing file,
an S3 notification of an object, or a Kafka batch) and what SPEC §3 says must become of its
records: how many land in the bronze event tables, and how many in quarantine by error code.
Run `python3 tests/hostile/make_cases.py` after editing; the test reads the JSON."""

import base64
import json
import pathlib

SALE = {"event_id": "e1", "event_time": "2026-11-25T10:00:00Z", "store_id": 1, "product_id": 2,
        "quantity": 2, "unit_price": 7.25}


def sale(**changes):
    out = dict(SALE)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()


def j(obj):
    return json.dumps(obj)


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def content(data):
    """Text as is (the test expands `{pad:N}` to N letters), bytes that are not UTF-8 as base64."""
    if isinstance(data, str):
        return {"text": data}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": b64(data)}


cases = []


def file_case(name, key, data, bronze, quarantine=None):
    cases.append({"name": name, "channel": "file", "key": key, "content": content(data),
                  "expect_bronze": bronze, "expect_quarantine": quarantine or {}})


def s3_case(name, key, data, bronze, quarantine=None, write=True):
    cases.append({"name": name, "channel": "s3", "key": key, "content": content(data), "write": write,
                  "expect_bronze": bronze, "expect_quarantine": quarantine or {}})


def kafka_case(name, values, bronze, quarantine=None, topic="sales-events"):
    """values: payloads (str or bytes; the test base64-encodes them as Lambda does), None (no
    value), ("raw", text) for a value field that is not base64 at all, or ("repeat", n, text)
    for n records whose `{i}` is their number."""
    messages = []
    for v in values:
        if v is None:
            messages.append({"none": True})
        elif isinstance(v, tuple) and v[0] == "raw":
            messages.append({"raw": v[1]})
        elif isinstance(v, tuple):
            messages.append({"repeat": v[1], **content(v[2])})
        else:
            messages.append(content(v))
    cases.append({"name": name, "channel": "kafka", "topic": topic, "messages": messages,
                  "expect_bronze": bronze, "expect_quarantine": quarantine or {}})


L = "landing/sales-events/"
ok1, ok2 = j(sale(event_id="a1")), j(sale(event_id="a2"))

# Encodings and line ends.
file_case("invalid utf-8 line between valid ones", L + "utf8.jsonl",
          ok1.encode() + b"\n" + b'{"event_id": "\xff\xfe"}' + b"\n" + ok2.encode(), 2, {"not_utf8": 1})
file_case("utf-8 BOM at the start", L + "bom.jsonl", b"\xef\xbb\xbf" + (ok1 + "\n" + ok2).encode(), 2)
file_case("CRLF line ends", L + "crlf.jsonl", ok1 + "\r\n" + ok2 + "\r\n", 2)
file_case("blank and whitespace-only lines are not records", L + "blank.jsonl", "\n\n" + ok1 + "\n   \n\t\n" + ok2 + "\n\n", 2)
file_case("empty file", L + "empty.jsonl", "", 0)
file_case("only a newline", L + "newline.jsonl", "\n", 0)

# CSV.
H = "event_id,event_time,store_id,product_id,quantity,unit_price,customer_id\n"
file_case("CSV with a quoted newline in a field", L + "quoted.csv",
          H + 'c1,2026-11-25T10:00:00Z,1,2,2,7.25,"C\n1"\nc2,2026-11-25T10:00:00Z,1,2,2,7.25,C2\n', 2)
file_case("CSV row with too many columns", L + "wide.csv",
          H + "c1,2026-11-25T10:00:00Z,1,2,2,7.25,C1\nc2,2026-11-25T10:00:00Z,1,2,2,7.25,C2,extra\nc3,2026-11-25T10:00:00Z,1,2,2,7.25,C3\n",
          2, {"bad_csv_row": 1})
file_case("CSV row with too few columns", L + "narrow.csv",
          H + "c1,2026-11-25T10:00:00Z,1\nc2,2026-11-25T10:00:00Z,1,2,2,7.25,C2\n", 1, {"bad_csv_row": 1})
file_case("CSV with BOM and CRLF", L + "bomcrlf.csv",
          b"\xef\xbb\xbf" + (H + "c1,2026-11-25T10:00:00Z,1,2,2,7.25,\r\n").replace("\n", "\r\n").encode(), 1)
file_case("CSV header only", L + "header.csv", H, 0)
file_case("CSV with a non-number quantity", L + "text.csv", H + "c1,2026-11-25T10:00:00Z,1,2,two,7.25,\n", 0, {"wrong_type": 1})

# JSON shapes.
file_case("duplicate JSON keys: the last wins", L + "dupkeys.jsonl",
          '{"event_id":"d1","event_id":"d2","event_time":"2026-11-25T10:00:00Z","store_id":1,"product_id":2,"quantity":2,"unit_price":7.25}', 1)
file_case("nesting deeper than 128 levels", L + "deep.jsonl",
          json.dumps(sale(event_id="n1"))[:-1] + ', "extra": ' + "[" * 200 + "]" * 200 + "}", 0, {"not_json": 1})
file_case("record over 1 MiB", L + "huge.jsonl", j(sale(event_id="h1", customer_id="{pad:1048586}")) + "\n" + ok2, 1, {"too_large": 1})
file_case("not JSON", L + "notjson.jsonl", "{this is not json}\n" + ok1, 1, {"not_json": 1})
file_case("trailing garbage after the object", L + "trailing.jsonl", ok1 + " x", 0, {"not_json": 1})
file_case("an array, a string and null are not objects", L + "notobj.jsonl", '[1,2]\n"text"\nnull', 0, {"not_object": 3})
file_case("missing required field", L + "missing.jsonl", j(sale(event_id="m1", quantity=DROP)), 0, {"missing_field": 1})
file_case("null required field", L + "null.jsonl", j(sale(event_id="m2", quantity=None)), 0, {"missing_field": 1})
file_case("string where a number belongs", L + "wrongtype.jsonl", j(sale(event_id="w1", quantity="2")), 0, {"wrong_type": 1})
file_case("quantity beyond 32 bits", L + "big.jsonl", j(sale(event_id="b1", quantity=10 ** 12)), 0, {"out_of_range": 1})
file_case("huge number 1e30", L + "e30.jsonl", '{"event_id":"b2","event_time":"2026-11-25T10:00:00Z","store_id":1,"product_id":2,"quantity":1e30,"unit_price":7.25}', 0, {"out_of_range": 1})
file_case("number beyond f64", L + "e400.jsonl", '{"event_id":"b3","event_time":"2026-11-25T10:00:00Z","store_id":1,"product_id":2,"quantity":1,"unit_price":1e400}', 0, {"not_json": 1})
file_case("NaN", L + "nan.jsonl", '{"event_id":"b4","event_time":"2026-11-25T10:00:00Z","store_id":1,"product_id":2,"quantity":1,"unit_price":NaN}', 0, {"not_json": 1})
file_case("Infinity", L + "inf.jsonl", '{"event_id":"b5","event_time":"2026-11-25T10:00:00Z","store_id":1,"product_id":2,"quantity":1,"unit_price":Infinity}', 0, {"not_json": 1})
file_case("negative quantity is schema-valid (a quality rule fails later)", L + "neg.jsonl", j(sale(event_id="g1", quantity=-3)), 1)
file_case("price with three decimals", L + "price.jsonl", j(sale(event_id="p1", unit_price=7.255)), 0, {"invalid_value": 1})
file_case("timestamp without an offset", L + "nooffset.jsonl", j(sale(event_id="t1", event_time="2026-11-25T10:00:00")), 0, {"bad_timestamp": 1})
file_case("timestamp out of range", L + "year.jsonl", j(sale(event_id="t2", event_time="10000-01-01T00:00:00Z")), 0, {"bad_timestamp": 1})
file_case("timestamp as a number", L + "tsnum.jsonl", j(sale(event_id="t3", event_time=1764064800)), 0, {"wrong_type": 1})
file_case("id longer than 64 characters", L + "longid.jsonl", j(sale(event_id="x" * 65)), 0, {"bad_length": 1})
file_case("empty id", L + "emptyid.jsonl", j(sale(event_id="")), 0, {"bad_length": 1})
file_case("unicode and escapes in text fields", L + "unicode.jsonl", j(sale(event_id="u1", customer_id="Zoë 🍞 \u0000")), 1)
file_case("unknown operational status", "landing/equipment-metrics/status.jsonl",
          j({"metric_id": "q1", "equipment_id": 1, "event_time": "2026-11-25T10:00:00Z", "operational_status": "exploding", "power_kw": 1.0}), 0, {"invalid_value": 1})
file_case("interval of zero seconds", "landing/equipment-metrics/interval.jsonl",
          j({"metric_id": "q2", "equipment_id": 1, "event_time": "2026-11-25T10:00:00Z", "operational_status": "running", "power_kw": 1.0, "interval_seconds": 0}), 0, {"invalid_value": 1})

# Whole objects.
file_case("unknown dataset folder", "landing/croissants/x.jsonl", ok1 + "\n" + ok2, 0, {"unknown_dataset": 1})
file_case("unsupported file type", L + "data.xml", "<sale/>", 0, {"unsupported_file": 1})
s3_case("S3 key URL-encoded with spaces and plus", L + "day one+two.jsonl", ok1 + "\n" + ok2, 2)
s3_case("S3 zero-byte object", L + "zero.jsonl", "", 0)
s3_case("S3 key leaving the object root", "landing/sales-events/../../../etc/passwd.jsonl", ok1, 0, {"unsupported_file": 1}, write=False)

# Kafka batches.
kafka_case("Kafka value that is not base64", [ok1, ("raw", "%%%not base64%%%"), ok2], 2, {"bad_encoding": 1})
kafka_case("Kafka record without a value", [ok1, None], 1, {"bad_encoding": 1})
kafka_case("Kafka value not UTF-8", [b"\xff\xfe\xfd", ok2], 1, {"not_utf8": 1})
kafka_case("Kafka value over 1 MiB", [j(sale(event_id="k1", customer_id="{pad:1048577}")), ok2], 1, {"too_large": 1})
kafka_case("oversized Kafka batch: 6 MB in 12,000 records",
           [("repeat", 12_000, j(sale(event_id="big{i}", note="{pad:440}")))], 12_000)
kafka_case("Kafka topic of no dataset", [ok1], 0, {"unknown_dataset": 1}, topic="croissants")

path = pathlib.Path(__file__).with_name("cases.json")
path.write_text(json.dumps(cases, indent=1) + "\n")
print(f"{len(cases)} cases → {path}")
