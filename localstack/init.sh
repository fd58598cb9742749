#!/usr/bin/env bash
# Wires the lake bucket of a Bakehouse stack deployed on LocalStack (localstack/README.md):
# creates the bucket when missing and (re)writes its notifications — landing/ to ingest, bronze
# and silver metadata files to the next hop — from the stack's outputs. Idempotent; run it after
# `samlocal deploy`, and again after a LocalStack restart without persistence.
set -euo pipefail
STACK="${STACK:-bakehouse}"
AWS="${AWS:-awslocal}"

output() {
  "$AWS" cloudformation describe-stacks --stack-name "$STACK" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
bucket="$(output LakeBucket)"
ingest="$(output IngestFunctionArn)"
silver="$(output BronzeToSilverFunctionArn)"
gold="$(output SilverToGoldFunctionArn)"
[ -n "$bucket" ] && [ "$bucket" != None ] || { echo "stack $STACK has no LakeBucket output: deploy it first" >&2; exit 1; }

"$AWS" s3api head-bucket --bucket "$bucket" 2>/dev/null || "$AWS" s3api create-bucket --bucket "$bucket" >/dev/null

rule() { # id, function ARN, prefix, suffix
  local filter="{\"Name\":\"prefix\",\"Value\":\"$3\"}"
  [ -n "$4" ] && filter="$filter,{\"Name\":\"suffix\",\"Value\":\"$4\"}"
  printf '{"Id":"%s","LambdaFunctionArn":"%s","Events":["s3:ObjectCreated:*"],"Filter":{"Key":{"FilterRules":[%s]}}}' "$1" "$2" "$filter"
}
config="{\"LambdaFunctionConfigurations\":[$(rule landing "$ingest" landing/ ''),$(rule bronze-commit "$silver" warehouse/bronze/ .metadata.json),$(rule silver-commit "$gold" warehouse/silver/ .metadata.json)]}"
"$AWS" s3api put-bucket-notification-configuration --bucket "$bucket" --notification-configuration "$config"
"$AWS" s3api get-bucket-notification-configuration --bucket "$bucket" \
  --query 'LambdaFunctionConfigurations[].[Id,Filter.Key.FilterRules[0].Value]' --output text
echo "bucket $bucket wired to $STACK's functions"
