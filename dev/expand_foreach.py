"""Writes template.yaml with its Fn::ForEach loops expanded, as JSON on stdout, for checkov,
which does not expand them itself. The expansion is cfn-lint's own (the one `make lint` runs),
so checkov sees the resources CloudFormation's language extensions would create.
    python dev/expand_foreach.py template.yaml > expanded.json
"""
import json
import sys

import cfnlint.decode
from cfnlint.template import Template
from cfnlint.template.transforms._language_extensions import language_extension

path = sys.argv[1]
decoded, problems = cfnlint.decode.decode(path)
if problems:
    sys.exit(f"{path}: {problems}")
problems, expanded = language_extension(Template(path, decoded, ["us-east-1"]))
if problems:
    sys.exit(f"{path}: {problems}")
left = [key for key in expanded.get("Resources", {}) if key.startswith("Fn::ForEach")]
if left:
    sys.exit(f"{path}: loops left unexpanded: {left}")
json.dump(expanded, sys.stdout, indent=1, default=str)
