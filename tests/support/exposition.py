#!/usr/bin/env python3
"""Parses Prometheus text exposition format on standard input with the reference
parser of the prometheus_client package and prints every sample as JSON:
{"families": [{"name", "type", "help"}], "samples": [{"name", "labels", "value"}]}.
The tests of `certroll verify --format prometheus` compare these with the JSON report.
A parse error exits 1 with the parser's message."""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("python3 cannot import prometheus_client: apt-get install python3-prometheus-client")

text = sys.stdin.read()
families, samples = [], []
try:
    for family in text_string_to_metric_families(text):
        families.append({"name": family.name, "type": family.type, "help": family.documentation})
        for s in family.samples:
            samples.append({"name": s.name, "labels": dict(s.labels), "value": s.value})
except Exception as e:  # the parser raises ValueError and others on bad input
    sys.exit("not valid exposition format: %s" % e)
json.dump({"families": families, "samples": samples}, sys.stdout)
